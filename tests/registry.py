"""Every script's speed benchmark, and the targets it honestly does not meet.

What a script claims lives in the script itself: its TARGETS table, printed with PASS or
MISS in its own summary and checked by the runtime-budget harness through the script's
own check_target(), so the two can never disagree. This file holds only what is about
the machine and the project's history, not the algorithm:

- BENCHMARKS: the speed target from the script's issue, in wall seconds for the whole run
  on a 2-core machine like CI's. It is printed beside the measured time, not asserted.
- BUDGET_FACTOR: the hard limit on a run is this many times its benchmark. CI machines
  vary by up to 1.7x between runs, so 3x never fails a healthy run, yet still catches
  the regression that matters (a script that became several times slower).
- KNOWN_MISSES: targets a script honestly does not meet, keyed by (script, target as
  "metric op bound"), with the reason and the issue that records it. A known miss is
  still measured and printed as MISS and does not fail the run; meeting it does
  (strict, like pytest's xfail), so the mark cannot go stale.
- RECORDED: the headline metrics of one run of each script (every metric its TARGETS
  name: the method's, the baseline's, and a bound that names a metric), written by
  `python tests/record.py tier/script.py`. The harness runs every script under a random
  PYTHONHASHSEED and compares each with a relative tolerance of 1e-9, so a result that
  follows the order of a set or a dict fails with the seed that reproduces it. Not bit
  for bit: since Python 3.12, sum() of floats is compensated, so last digits differ
  across versions. README.md's numbers come from here.

Change a target only together with the issue that set it: a target loosened so a script
passes is a defect, not a fix.
"""

BUDGET_FACTOR = 3

BENCHMARKS = {
    "foundational/microgpt.py": 30,
    "foundational/micrornn.py": 60,
    "foundational/microtokenizer.py": 10,
    "foundational/microembedding.py": 20,
    "foundational/microrag.py": 90,
    "foundational/microdiffusion.py": 60,
    "foundational/microvae.py": 60,
    "foundational/microconv.py": 60,
    "foundational/microseq2seq.py": 90,
    "alignment/microlora.py": 120,
    "alignment/microdpo.py": 150,
    "alignment/microppo.py": 150,
    "alignment/micromoe.py": 120,
    "systems/microattention.py": 10,
    "systems/microquant.py": 60,
    "systems/microkv.py": 45,
    "systems/microflash.py": 10,
    "systems/microbeam.py": 60,
    "systems/microspeculative.py": 60,
    "foundational/microperceptron.py": 15,
    "foundational/microoptim.py": 30,
    "foundational/microautograd.py": 45,
    "foundational/micronorm.py": 90,
    "systems/microrope.py": 120,
    "systems/microtrainer.py": 90,
    "systems/microddp.py": 60,
    "systems/micromapreduce.py": 45,
}

KNOWN_MISSES = {}

RELATIVE_TOLERANCE = 1e-9

# One line per script, rewritten by tests/record.py (keep each entry on one line).
RECORDED = {
    "alignment/microdpo.py": {"dpo_favoured_heldout_rise": -0.3087789652063644, "dpo_mean_letters": 3.14, "dpo_pronounceable": 0.875, "pft_best_mean_letters": 4.105, "small_beta_favoured_heldout_rise": 3.688123747432636, "small_beta_pronounceable": 0.0},
    "alignment/microlora.py": {"base_heldout": 2.344435470764354, "bigram_heldout": 2.4502647047387835, "count_recovery": 0.7244114598753596, "full_forgetting": 0.5822484997673825, "lora_every_r4_recovery": 0.9601152603088252, "lora_qv_r1_forgetting": 0.29655934795383976, "lora_qv_r1_recovery": 0.4684727995427296, "lora_qv_r8_recovery": 0.6355956544214267},
    "alignment/micromoe.py": {"drop_frac_top1_bal": 0.0420249653259362, "drop_frac_top1_nobal": 0.5147018030513176, "min_share_top1_bal": 0.1954230235783634, "min_share_top1_nobal": 0.0, "specialisation_mi": 0.20238343007341716, "untrained_mi": 0.014346676399337562},
    "alignment/microppo.py": {"length_rm_heldout_acc": 0.36, "no_baseline_kl": 3.351276982133383, "no_clip_kl": 7.0070273153575355, "ppo_kl": 1.6327217467051336, "ppo_vowel_rate": 0.99, "ref_vowel_rate": 0.485, "rm_heldout_acc": 0.995},
    "foundational/microautograd.py": {"bigram_heldout_loss": 2.4520898991037443, "heldout_loss": 2.3239163676722825, "scalar_nodes_per_step": 3225, "tensor_nodes_per_step": 54},
    "foundational/microconv.py": {"cnn_shift_lr_drop": 0.42399999999999993, "cnn_test_acc": 0.98, "mlp_shift_lr_drop": 0.481, "mlp_test_acc": 0.982, "ncm_test_acc": 0.92},
    "foundational/microdiffusion.py": {"heldout_loss": 0.3454987941244946, "linear_denoiser_loss": 0.3970171659375807, "linear_nn_ratio_heldout": 8.563980432316402, "nn_ratio_heldout": 2.313931799910169},
    "foundational/microembedding.py": {"pos_cosine": 0.7665884862009705, "retrieval_top1": 0.888, "untrained_pos_cosine": 0.7041854235873203, "untrained_retrieval_top1": 0.779},
    "foundational/microgpt.py": {"bigram_heldout_loss": 2.4520898991037443, "heldout_loss": 2.323916367672282, "pronounceable_frac": 1.0, "untrained_pronounceable_frac": 0.04},
    "foundational/micronorm.py": {"batchnorm_batch2_heldout": 3.041643372826776, "postln_high_lr_heldout": 2.836473307933469, "postln_warmup_high_lr_heldout": 2.6732227735611263, "preln_batch2_heldout": 2.773767621183842, "preln_high_lr_heldout": 2.5445557565961834},
    "foundational/microoptim.py": {"adam_heldout_loss": 2.4964590095017263, "adam_l2_large_grad_weight": 0.8145257688326386, "adam_steps_scaled": 70, "adamw_large_grad_weight": 0.13026905634860605, "momentum_steps_valley": 27, "sgd_heldout_loss": 2.533188249685176, "sgd_steps_scaled": 2227, "sgd_steps_valley": 170},
    "foundational/microperceptron.py": {"logreg_xor_heldout_loss": 0.6931205656923582, "mlp_xor_heldout_acc": 1.0, "mlp_xor_heldout_loss": 0.01682496237748227, "perceptron_sep_heldout_acc": 1.0, "perceptron_xor_heldout_acc": 0.5525, "untrained_sep_heldout_acc": 0.5},
    "foundational/microrag.py": {"bm25_k1_0_top1": 0.6541666666666667, "bm25_top1": 1.0, "em_bm25": 0.9666666666666667, "em_k1_0": 0.6333333333333333, "untrained_em_bm25": 0.0},
    "foundational/micrornn.py": {"bigram_heldout_loss": 2.4520898991037443, "gru_heldout_loss": 2.343674443647157, "recall_gru_acc_long": 1.0, "recall_gru_zero_bias_acc_long": 0.24609375, "recall_rnn_acc_long": 0.43359375, "rnn_heldout_loss": 2.357367916143764},
    "foundational/microseq2seq.py": {"agreement_compositional": 1.0, "baseline_agreement_compositional": 0.19, "baseline_exact_compositional": 0.0, "baseline_exact_random": 0.142, "exact_compositional": 1.0, "exact_random": 1.0},
    "foundational/microtokenizer.py": {"heldout_compression": 2.224258448354797, "names_compression": 1.7079223928860146, "pairs_heldout_compression": 1.5908982658887085, "shakespeare_tokenizer_on_names": 1.3844692005242465},
    "foundational/microvae.py": {"gaussian_nn": 0.3962431689043341, "nearest_centre_recon": 0.11428395458853126, "prior_moment_err": 0.8227086745934842, "prior_nn": 0.1060707980511186, "recon_heldout": 0.06355081325577668, "untrained_prior_moment_err": 3.823327189861318},
    "systems/microattention.py": {"gqa_cos_eps_0.3": 0.9476425953041895, "gqa_pick_cos_eps_0.3": 0.8924664034545913, "mla_cos_eps_1": 0.5957745011599688, "mqa_cos_eps_0.3": 0.9343262741178586, "mqa_cos_eps_1": 0.24868905271518177, "mqa_pick_cos_eps_0.3": 0.8663438339756686},
    "systems/microbeam.py": {"sample_mean_logp": -12.661853102489612, "temperature_mean_logp": -10.290473295654413, "topk_mean_logp": -9.566574056619427, "topp_mean_logp": -10.998862964899976},
    "systems/microddp.py": {"ps_busiest_link_w4": 3.0, "ps_busiest_link_w8": 7.0, "ring_busiest_link_w4": 1.5, "ring_busiest_link_w8": 1.75},
    "systems/microflash.py": {"flash_over_standard_traffic_worst": 0.205, "flash_theorem2_rel_error": 0.1160714285714286, "square_tiles_over_standard_traffic_worst": 0.625, "standard_theorem2_rel_error": 5.928571428571429},
    "systems/microkv.py": {"cached_growth": 2.0745920745920747, "contiguous_waste_per_seq": 12.294520547945206, "paged_waste_per_seq": 4.294520547945205, "prefill_mults_per_weight": 14.210884353741497, "shared_cache_floats": 2304, "shared_floats_bound": 2304, "token_by_token_mults_per_weight": 1.0726392251815982, "uncached_growth": 3.8512396694214877, "unshared_cache_floats": 4096},
    "systems/micromapreduce.py": {"combined_shuffle_fraction": 0.14994462467289355, "hash_max_over_mean": 1.805, "plain_shuffle_fraction": 1.0, "salted_max_over_mean": 1.14836},
    "systems/microquant.py": {"int2_asym_group4_gain_lost": 0.21585311612883393, "int2_asym_tensor_gain_lost": 5.594913212887753, "int2_sym_tensor_gain_lost": 13.180808914092994, "int4_sym_group8_gain_lost": 0.03584987597930979},
    "systems/microrope.py": {"learned_acc_16": 0.9992307692307693, "none_acc_16": 0.2823076923076923, "rope_acc_16": 1.0, "rope_acc_beyond": 0.65125, "sinusoidal_acc_16": 0.9984615384615385, "sinusoidal_acc_beyond": 0.40125},
    "systems/microspeculative.py": {"bigram_accept_gap": 0.013187529178413593, "bigram_alone_joint_tv": 0.3463784154380132, "bigram_naive_accept_gap": 0.18131545982063724, "bigram_spec_joint_tv": 0.13142149555336402, "bigram_tokens_per_pass": 2.7195979899497487, "plain_noise_ceiling": 0.1639595592873591, "unigram_accept_gap": 0.00672178458071282, "unigram_alone_joint_tv": 0.6039125500923909, "unigram_naive_accept_gap": 0.23336433044326416, "unigram_spec_joint_tv": 0.14489547598022517, "unigram_tokens_per_pass": 2.1137629276054097},
    "systems/microtrainer.py": {"best_checkpoint_heldout_loss": 2.9360424170288444, "constant_heldout_loss": 2.487627812626537, "cosine_heldout_loss": 2.4010418548141836, "last_step_heldout_loss": 4.487738802926845},
}


def budget_s(script):
    """The hard time limit for one whole run: budget_s(s) == 3 * BENCHMARKS[s]."""
    return BUDGET_FACTOR * BENCHMARKS[script]


def target_key(metric, op, bound):
    """How KNOWN_MISSES names a target: target_key("loss", "<", 2.5) -> "loss < 2.5"."""
    return f"{metric} {op} {bound}"


def headline_metrics(targets):
    """The metrics a TARGETS table names, sorted: what RECORDED keeps for a script.

    >>> headline_metrics([("loss", "<=", 2.4, "bigram"), ("acc", ">", "untrained_acc", "untrained_acc")])
    ['acc', 'bigram', 'loss', 'untrained_acc']
    """
    names = set()
    for metric, _, bound, baseline in targets:
        names.update([metric, baseline] + ([bound] if isinstance(bound, str) else []))
    return sorted(names)


def drifted(recorded, metrics):
    """Recorded metrics whose new value differs by more than RELATIVE_TOLERANCE, as
    (name, recorded, measured); a missing metric counts as drift.

    >>> drifted({"loss": 2.0, "acc": 0.5}, {"loss": 2.0 + 1e-12, "acc": 0.51})
    [('acc', 0.5, 0.51)]
    """
    out = []
    for name in sorted(recorded):
        value = metrics.get(name)
        if value is None or abs(value - recorded[name]) > RELATIVE_TOLERANCE * max(abs(recorded[name]), 1e-3):
            out.append((name, recorded[name], value))
    return out
