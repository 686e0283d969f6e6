"""Which tests the quick tier (`make test`) leaves to the full suite (`make test-all`).

The quick tier is what a newcomer waits for: at most 4 minutes on 2 cores (met on a Sapphire
Rapids Xeon; about 5 on an AVX2-only AMD EPYC, see the README), still at least one behavioural
test of every module and mechanism. The tests named here are the slow ones
(measured with `pytest --durations=0`) whose mechanism a quicker test also covers; each entry
says which. `make test-all` and `.ci/run` run everything.
"""

from __future__ import annotations

# node id prefix -> the quick test that covers the same mechanism
SLOW: dict[str, str] = {
    "tests/test_hops.py::test_the_table1_path_is": "test_a_station_matches_the_end_of_a_stack",
    "tests/test_bench_cluster.py::test_the_tiny_bench_on_ray": "test_executors.py[ray]",
    "tests/test_bench_cluster.py::test_a_driver_killed": "test_executors.py[ray]",
    "tests/test_bench_cluster.py::test_a_ray_worker_killed": "test_executors.py[ray]",
    "tests/test_bench_cluster.py::test_a_bench_through_submitit": "test_executors.py[submitit]",
    "tests/test_adversarial_training.py::test_pgd_at_is_20_points": "test_trades_trains_and_…",
    "tests/test_bench.py::test_smoke_bench_on_a_fresh_folder": "test_numerics.py gate tests, "
    "the tiny-bench tests of test_bench.py",
    "tests/test_faults.py::test_train_killed_at_random_moments": "…between_any_two_renames[2]",
    "tests/test_faults.py::test_bench_killed_at_random_moments": "…at_a_commit_step[3]",
    "tests/test_faults.py::test_bench_killed_at_a_commit_step_resumes_to_the_same_bytes[7]": "[3]",
    "tests/test_faults.py::test_bench_killed_at_a_commit_step_resumes_to_the_same_bytes[9]": "[3]",
    "tests/test_faults.py::test_bench_killed_at_a_commit_step_resumes_to_the_same_bytes[10]": "[3]",
    "tests/test_faults.py::test_bench_killed_at_a_commit_step_resumes_to_the_same_bytes[12]": "[3]",
    "tests/test_faults.py::test_train_killed_between_any_two_renames_resumes_to_the_same_bytes[3]": "…at_a_commit_step[3]",
    "tests/test_faults.py::test_train_killed_between_any_two_renames_resumes_to_the_same_bytes[4]": "…at_a_commit_step[3]",
    "tests/test_faults.py::test_train_killed_between_any_two_renames_resumes_to_the_same_bytes[5]": "…at_a_commit_step[3]",
    "tests/test_faults.py::test_train_killed_between_any_two_renames_resumes_to_the_same_bytes[6]": "…at_a_commit_step[3]",
    "tests/test_faults.py::test_train_killed_after_its_last_rename": "…at_a_commit_step[3]",
    "tests/test_faults.py::test_train_killed_between_any_two_renames_resumes_to_the_same_bytes[1]": "…at_a_commit_step[3]",
    "tests/test_lowrank.py::test_normalized_bottleneck_trains_at_the_recipe_lr": "bottle tests",
    "tests/test_lowrank.py::test_lr_resume_after_sigkill": "…at_a_commit_step[3]",
    "tests/test_comparison_methods.py::test_srn_resumes_after_sigkill": "…at_a_commit_step[3]",
    "tests/test_train.py::test_sigkill_then_rerun_gives_identical_weights": "…at_a_commit_step[3]",
    "tests/test_bench_external.py::test_an_external_model_joins_the_bench": "test_bench_board.py",
    "tests/test_step_modes.py::test_compiled_step_trains_like_eager[sn]": "[nlr]",
    "tests/test_numerics.py::test_each_lever_alone_moved_away": "test_pinned_paths_give_the_"
    "same_bytes_on_an_avx2_cpu (the levers in force, and native against them)",
    # A real retraining on the perturbed path inside a bench (the stage, a child under other
    # levers, the leaderboard column).
    "tests/test_numerics.py::test_the_bench_retrains_each_model_on_a_perturbed": "test_a_"
    "retraining_that_diverges_is_recorded_as_an_unbounded_spread (the stage, its rows and the "
    "leaderboard column), test_pinned_paths_give_the_same_bytes_on_an_avx2_cpu (a child under "
    "other levers)",
    # The four tests of the 20-epoch N-LR / 1-LR pair (two 20-epoch trainings).
    "tests/test_lowrank.py::test_1lr_lowers_the_rank_at_equal_accuracy": "test_bottle_lr_"
    "representation_has_rank_at_most_r (LR training reaches low rank)",
    "tests/test_lowrank.py::test_1lr_history_logs": "test_2lr_trains_two_branches (lr_relerr)",
    "tests/test_lowrank.py::test_1lr_checkpoint_is_the_plain": "test_comparison_methods.py's"
    " loads_as_a_plain_model",
    "tests/test_lowrank.py::test_analyze_rank_cli": "test_analysis.py[rank], the analyze "
    "command tests of test_analysis.py",
    "tests/test_step_modes.py::test_compiled_step_trains_like_eager[1lr]": "[nlr]",
    # Other hints of the same bisection (the registry test runs the hinted bisection against the
    # plain one), the other masking kind, one more corruption filter and the bf16
    # DeepFool stop (the bf16 DeepFool bounds test crafts in bf16 and judges in float32 too).
    "tests/test_attacks.py::test_a_hinted_threshold_keeps_the_bisections_guarantee[too small]": "test_every_search_is_a_registry_entry_deepfool_included",
    "tests/test_attacks.py::test_a_hinted_threshold_keeps_the_bisections_guarantee[too large]": "test_every_search_is_a_registry_entry_deepfool_included",
    "tests/test_attacks.py::test_a_hinted_threshold_keeps_the_bisections_guarantee[unreachable]": "test_every_search_is_a_registry_entry_deepfool_included",
    "tests/test_audit.py::test_masked_models_fail_the_masking_checks[saturated]": "[zero-grad]",
    "tests/test_corruptions.py::test_generated_corruption_is_deterministic_and_seeded[glass_blur]": "[frost] and the other filters",
    "tests/test_craft_precision.py::test_bf16_deepfool_stops_no_sample_short": "test_bf16_crafting_"
    "stays_in_bounds_and_every_fooled_example_is_fooled_in_float32[deepfool-…]",
    # The training's own kill test: the bench's kill at its third commit step is the training's
    # first train-state write, resumed through the same `train()` and compared byte for byte.
    "tests/test_faults.py::test_train_killed_between_any_two_renames_resumes_to_the_same_bytes[2]": "…at_a_commit_step[3]",
    "tests/test_attacks.py::test_a_hinted_threshold_keeps_the_bisections_guarantee[implied]": "test_every_search_is_a_registry_entry_deepfool_included",
    "tests/test_attacks.py::test_threshold_search_reports_the_smallest_grid_eps": "test_exactly_99_percent_is_not_more_than_99_percent, test_minrho_command_writes_threshold_bisection_and_curve_rows",
    # Same-seed training bytes: a deleted meta's full retraining gives the same bytes, and a
    # finished run is skipped.
    "tests/test_train.py::test_same_seed_same_bytes_and_finished_run_is_skipped": "test_commit_protocol.py::test_damaged_checkpoint_is_rebuilt_to_the_same_bytes, test_fast_projections.py::test_a_checkpoint_written_before_an_option_existed_is_the_same_run",
    "tests/test_analysis.py::test_analysis_rows_are_deterministic_and_in_the_results_schema[cushion]": "test_layer_cushion_matches_a_hand_computation, test_layer_cushion_of_linear_layers_lies_in_unit_interval",
    "tests/test_analysis.py::test_analysis_rows_are_deterministic_and_in_the_results_schema[deepfool-examples]": "test_deepfool_examples_keep_the_images_fig3_draws",
    # Bounds of attacks another quick test runs through `run_attack`, which checks box and ball
    # on every call.
    "tests/test_attacks.py::test_outputs_stay_in_box_and_ball_and_repeat[deepfool[foolbox]": "test_verify_passes_on_agreement_and_fails_loudly_otherwise",
    "tests/test_attacks.py::test_outputs_stay_in_box_and_ball_and_repeat[deepfool[ours]": "test_deepfool_in_memory_halves_gives_each_sample_its_own_result",
    "tests/test_attacks.py::test_outputs_stay_in_box_and_ball_and_repeat[autoattack-standard-l2[": "test_audit_l2.py::test_every_l2_run_stays_inside_its_ball",
    "tests/test_attacks.py::test_outputs_stay_in_box_and_ball_and_repeat[autoattack-standard[": "test_standard_autoattack.py::test_stays_in_ball_and_box_and_finds_the_exact_worst_case",
    "tests/test_attacks.py::test_outputs_stay_in_box_and_ball_and_repeat[autoattack[": "test_audit.py::test_autoattack_attack_is_at_most_its_first_component",
    # SN's training, export and resume (the default torch path trains in test_fast_projections;
    # export and resume are the same code for SNIP and SRN, which stay).
    "tests/test_comparison_methods.py::test_trains_to_90_percent_and_loads_as_a_plain_model[sn]": "[snip], [srn], test_fast_projections.py::test_sn_and_srn_train_with_the_batched_power_iteration[sn]",
    "tests/test_comparison_methods.py::test_training_state_resumes_into_a_freshly_prepared_model[sn]": "[snip], [srn]",
    "tests/test_comparison_methods.py::test_sn_layers_have_unit_spectral_norm": "test_fast_projections.py::test_sn_and_srn_train_with_the_batched_power_iteration[sn]",
}


def is_slow(nodeid: str) -> bool:
    return any(nodeid.startswith(prefix) for prefix in SLOW)
