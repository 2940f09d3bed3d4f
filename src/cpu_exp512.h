/* cpu_exp512.h — e^x on 16 floats with AVX-512, for the softmax of cpu_attention.c and
 * cpu_attention_prefill.c (x86-64 only; the caller includes immintrin.h). */
#ifndef REASON_CPU_EXP512_H
#define REASON_CPU_EXP512_H

#include <immintrin.h>

/* e^x for x <= 0 (scores minus their maximum): 2^n · p(r), r = x - n ln2 in [-ln2/2, ln2/2],
 * p the degree-6 Taylor polynomial (relative error < 2e-7); scalef gives 0 for very negative x. */
__attribute__((target("avx512f,fma"))) static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

#endif
