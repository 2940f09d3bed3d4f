/* rope_scaling.h — context-extension schemes that change RoPE's frequencies, computed once at
 * load as per-frequency divisors (rope_params.freq_div) and a factor on cos/sin. */
#ifndef REASON_ROPE_SCALING_H
#define REASON_ROPE_SCALING_H

#include "core.h"

/* YaRN (arXiv 2309.00071, as transformers' _compute_yarn_parameters computes it): frequency i of
 * rot_dim/2 blends the original (extrapolation) and the factor-scaled one (interpolation) along
 * a linear ramp between the dimensions that turn beta_fast and beta_slow times over the original
 * context (floored/ceiled when truncate); written as divisors of the original frequency. */
RS_INTERNAL void rope_yarn_divisors(int32_t rot_dim, double theta, double factor,
                                    double beta_fast, double beta_slow, int32_t original_ctx,
                                    bool truncate, float *div);

/* YaRN's default attention factor on cos/sin: 0.1 ln(factor) + 1 (1 for factor <= 1). */
RS_INTERNAL double rope_yarn_attn_factor(double factor);

#endif
