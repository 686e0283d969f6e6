"""The rank projection Π_r(W) of the LR branch (paper Algorithm 1 step 6, Appendix B.2, Lemma 1).

Interchangeable implementations behind `PROJECTIONS` (chosen by `--lr-projection`), all mapping
a square matrix to a symmetric positive semi-definite matrix of rank ≤ r, computed in float32
even under autocast and on whichever device W lives:

- `exact`: eigendecomposition of the symmetric part (torch.linalg.eigh), top r eigenvalues kept
  and negative ones dropped: the best rank-r PSD approximation in Frobenius norm;
- `randomized`: a range basis from torch.svd_lowrank (Halko et al. 2011), then the exact
  eigendecomposition of W compressed to that basis (Rayleigh-Ritz), so the result stays
  symmetric PSD; O(m²r) instead of O(m³);
- `nystrom`: the ensembled Nyström method (Kumar et al. 2009; paper Appendix B.2), which only
  decomposes 2r × 2r principal submatrices. The paper averages t Nyström approximations; an
  average of t rank-r matrices has rank up to t·r, so the average (kept in factored form F Fᵀ)
  is truncated back to rank r, a QR of an m × t·r matrix. Lemma 1's δ·I smoothing is added to
  the small matrix only when its eigendecomposition fails, and repeated while it does;
- `randomized-lite`: `randomized` with one power iteration instead of two and half the
  oversampling, for the wide 2-LR tap on a GPU, where svd_lowrank's QRs set the cost.

When the sketch (both randomized rules) or the 2r sampled columns (Nyström) would be half of W
or more, they fall back to `exact`, which is then cheaper and exact.

Random draws come from a CPU `torch.Generator` the caller seeds (run seed and step), so a
resumed run projects exactly as the uninterrupted one did, and CPU and CUDA sample the same
columns.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from robustbench_lr.registry import Registry

Projection = Callable[[torch.Tensor, int, torch.Generator | None, int], torch.Tensor]
PROJECTIONS: Registry[Projection] = Registry("projection")

DELTA = 0.01  # the paper's smoothing step δ (Appendix B.1)
MAX_SMOOTHING = 20  # attempts at adding δ·I before giving up


def symmetric_part(w: torch.Tensor) -> torch.Tensor:
    """(W + Wᵀ)/2 in float32: the branch's effective matrix (paper Appendix B.1)."""
    w = w.float()
    return (w + w.T) / 2


def _tolerance(eigenvalues: torch.Tensor, size: int) -> torch.Tensor:
    """Eigenvalues at or below this count as zero (numpy/pinv's rcond convention)."""
    info = torch.finfo(torch.float32)
    return eigenvalues.abs().max().clamp_min(info.tiny) * size * info.eps


def _top_psd(
    eigenvalues: torch.Tensor, vectors: torch.Tensor, r: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The r largest eigenpairs whose eigenvalue is positive (eigh returns ascending order)."""
    values, vecs = eigenvalues.flip(0)[:r], vectors.flip(1)[:, :r]
    keep = values > _tolerance(eigenvalues, len(eigenvalues))
    return values[keep], vecs[:, keep]


def _compose(vectors: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """V diag(λ) Vᵀ, symmetrized against rounding."""
    return symmetric_part((vectors * values) @ vectors.T)


def _eigh_smoothed(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """eigh(Z + k·δ·I) for the smallest k ≥ 0 at which it converges (paper Appendix B.1)."""
    eye = torch.eye(len(z), dtype=z.dtype, device=z.device)
    for k in range(MAX_SMOOTHING):
        try:
            return torch.linalg.eigh(z + k * DELTA * eye)
        except torch.linalg.LinAlgError:
            continue
    raise FloatingPointError(
        f"eigh did not converge after adding {MAX_SMOOTHING} x {DELTA}·I; W is not finite?"
    )


@PROJECTIONS.register("exact")
def project_exact(
    w: torch.Tensor, r: int, generator: torch.Generator | None = None, ensemble: int = 1
) -> torch.Tensor:
    """The reference: the best rank-r PSD approximation of W's symmetric part, O(m³)."""
    with torch.autocast(w.device.type, enabled=False):
        values, vectors = _top_psd(*_eigh_smoothed(symmetric_part(w)), r)
        return _compose(vectors, values)


def _rayleigh_ritz(basis: torch.Tensor, small: torch.Tensor, r: int) -> torch.Tensor:
    """The rank-r PSD approximation within span(`basis`, orthonormal) from `small`, the matrix
    compressed to that basis (Bᵀ W B; Nyström's R Rᵀ): the randomized and Nyström rules both
    reduce W to a small matrix, decompose it and lift its top eigenpairs back the same way."""
    values, vectors = _top_psd(*_eigh_smoothed(symmetric_part(small)), r)
    return _compose(basis @ vectors, values)


def _seed_from(generator: torch.Generator | None) -> int:
    if generator is None:
        return 0
    return int(torch.randint(0, 2**62, (1,), generator=generator).item())


def _range_rule(oversample: int, share: int, niter: int) -> Projection:
    """A randomized rule: a range basis of r + max(`oversample`, r // `share`) columns with
    `niter` power iterations (torch.svd_lowrank, Halko et al. 2011), then Rayleigh-Ritz on it.

    svd_lowrank draws its test matrix from the global RNG, so it runs inside a forked RNG seeded
    from `generator`: the projection is reproducible and leaves the training RNG untouched.
    """

    def project_range(
        w: torch.Tensor, r: int, generator: torch.Generator | None = None, ensemble: int = 1
    ) -> torch.Tensor:
        q = r + max(oversample, r // share)
        with torch.autocast(w.device.type, enabled=False):
            sym = symmetric_part(w)
            if 2 * q >= len(sym):  # a sketch this large costs more than the full decomposition
                return project_exact(sym, r)
            with torch.random.fork_rng(devices=[w.device] if w.device.type == "cuda" else []):
                torch.manual_seed(_seed_from(generator))
                basis, _, _ = torch.svd_lowrank(sym, q=q, niter=niter)
            return _rayleigh_ritz(basis, basis.T @ sym @ basis, r)

    return project_range


# 2 power iterations and Halko et al. §4.2's oversampling: within ~1% of the optimal error.
PROJECTIONS.add("randomized", _range_rule(10, 10, niter=2))


def _nystrom_factor(sym: torch.Tensor, r: int, generator: torch.Generator | None) -> torch.Tensor:
    """F with F Fᵀ = C Z_r⁺ Cᵀ for l = 2r uniformly sampled columns (Appendix B.2, Eq. 3)."""
    idx = torch.randperm(len(sym), generator=generator)[: 2 * r].to(sym.device)
    c = sym[:, idx]
    values, vectors = _top_psd(*_eigh_smoothed(c[idx]), r)
    return c @ (vectors / values.sqrt())


@PROJECTIONS.register("nystrom")
def project_nystrom(
    w: torch.Tensor, r: int, generator: torch.Generator | None = None, ensemble: int = 1
) -> torch.Tensor:
    """t = `ensemble` Nyström members averaged, then rank ≤ r. Each member is PSD (Lemma 1), so
    is their mean F Fᵀ/t; its top-r eigenpairs come from a QR of F (m × t·r), never an m × m
    eigendecomposition."""
    if ensemble < 1:
        raise ValueError(f"--lr-nystrom-ensemble must be at least 1, got {ensemble}")
    with torch.autocast(w.device.type, enabled=False):
        sym = symmetric_part(w)
        if 2 * r >= len(sym):  # l = 2r columns would be all of W: decompose it directly
            return project_exact(sym, r)
        factor = (
            torch.cat([_nystrom_factor(sym, r, generator) for _ in range(ensemble)], dim=1)
            / ensemble**0.5
        )
        if factor.shape[1] == 0:
            return torch.zeros_like(sym)
        q, rr = torch.linalg.qr(factor)
        return _rayleigh_ritz(q, rr @ rr.T, r)


# svd_lowrank's QRs (one, plus two per power iteration) set the 2-LR tap's cost on CUDA: 3 QRs
# instead of 5, for ~5% instead of ~1% above the optimal error on a 1/i spectrum (reports/perf.md).
PROJECTIONS.add("randomized-lite", _range_rule(5, 20, niter=1))


def project(
    name: str, w: torch.Tensor, r: int, generator: torch.Generator | None = None, ensemble: int = 1
) -> torch.Tensor:
    """Π_r(W) with the named implementation; an unknown name lists the valid ones."""
    if r < 1:
        raise ValueError(f"the target rank must be at least 1, got {r}")
    return PROJECTIONS.get(name)(w, r, generator, ensemble)
