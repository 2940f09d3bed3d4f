/* rope_scaling.c — YaRN's frequencies and attention factor (rope_scaling.h). */
#include "rope_scaling.h"

#include <math.h>

/* The dimension whose frequency turns `rotations` times over ctx positions. */
static double correction_dim(double rotations, int32_t dim, double theta, int32_t ctx) {
    return dim * log(ctx / (rotations * 2 * M_PI)) / (2 * log(theta));
}

void rope_yarn_divisors(int32_t rot_dim, double theta, double factor, double beta_fast,
                        double beta_slow, int32_t original_ctx, bool truncate, float *div) {
    double lo = correction_dim(beta_fast, rot_dim, theta, original_ctx);
    double hi = correction_dim(beta_slow, rot_dim, theta, original_ctx);
    if (truncate) lo = floor(lo), hi = ceil(hi);
    lo = lo > 0 ? lo : 0;
    hi = hi < rot_dim - 1 ? hi : rot_dim - 1;
    if (lo == hi) hi += 0.001; /* no zero-width ramp */
    for (int32_t i = 0; i < rot_dim / 2; i++) {
        double ramp = (i - lo) / (hi - lo);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        const double extrapolation = 1.0 - ramp; /* its share of the original frequency */
        div[i] = (float)(1.0 / ((1.0 - extrapolation) / factor + extrapolation));
    }
}

double rope_yarn_attn_factor(double factor) {
    return factor <= 1.0 ? 1.0 : 0.1 * log(factor) + 1.0;
}
