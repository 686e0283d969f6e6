"""The low-rank regularizer's machinery: rank projections and the LR branch (paper Section 2)."""
