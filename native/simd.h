// A minimal fixed-width float vector `Vf` for one instruction set, so every kernel is written once
// and compiled three times (isa_avx512.cc, isa_avx2.cc, isa_portable.cc). This header is included
// by those files AFTER their `#pragma GCC target` and INSIDE their ISA namespace; it has no guard
// on purpose. Exactly one of RED_ISA_AVX512 / RED_ISA_AVX2 / RED_ISA_PORTABLE is defined.

#if defined(RED_ISA_AVX512)

struct Vf { __m512 v; };
constexpr int W = 16;                       // floats per vector
static inline Vf vload(const float* p) { return {_mm512_loadu_ps(p)}; }
static inline void vstore(float* p, Vf a) { _mm512_storeu_ps(p, a.v); }
static inline __mmask16 tailMask(int n) { return (__mmask16)((1u << n) - 1u); }
// First n (< W) lanes; the others read as 0 and are not written.
static inline Vf vloadPart(const float* p, int n) { return {_mm512_maskz_loadu_ps(tailMask(n), p)}; }
// W bf16 values (raw bits) widened to fp32, exactly: the bits shifted into the top half.
static inline Vf vload(const uint16_t* p) {
  return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16))};
}
static inline Vf vloadPart(const uint16_t* p, int n) {
  return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(tailMask(n), p)), 16))};
}
static inline void vstorePart(float* p, Vf a, int n) { _mm512_mask_storeu_ps(p, tailMask(n), a.v); }
static inline Vf vset1(float x) { return {_mm512_set1_ps(x)}; }
static inline Vf vzero() { return {_mm512_setzero_ps()}; }
static inline Vf vadd(Vf a, Vf b) { return {_mm512_add_ps(a.v, b.v)}; }
static inline Vf vsub(Vf a, Vf b) { return {_mm512_sub_ps(a.v, b.v)}; }
static inline Vf vmul(Vf a, Vf b) { return {_mm512_mul_ps(a.v, b.v)}; }
static inline Vf vdiv(Vf a, Vf b) { return {_mm512_div_ps(a.v, b.v)}; }
static inline Vf vmax(Vf a, Vf b) { return {_mm512_max_ps(a.v, b.v)}; }
static inline Vf vmin(Vf a, Vf b) { return {_mm512_min_ps(a.v, b.v)}; }
static inline Vf vsqrt(Vf a) { return {_mm512_sqrt_ps(a.v)}; }
static inline Vf vfmadd(Vf a, Vf b, Vf c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }   // a·b + c
static inline Vf vfnmadd(Vf a, Vf b, Vf c) { return {_mm512_fnmadd_ps(a.v, b.v, c.v)}; } // c − a·b
static inline Vf vround(Vf a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
static inline Vf vscale2(Vf p, Vf n) { return {_mm512_scalef_ps(p.v, n.v)}; }  // p·2^n, n integral
// Horizontal reductions by halves (GCC 12's _mm512_reduce_*_ps trips -Wuninitialized).
static inline __m128 quarterSum(__m512 a) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
static inline __m128 quarterMax(__m512 a) {
  const __m256 h = _mm256_max_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  return _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
static inline float vhsum(Vf a) {
  __m128 s = quarterSum(a.v);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
static inline float vhmax(Vf a) {
  __m128 s = quarterMax(a.v);
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

// r[0..15] ← its transpose (r[i] lane j ↔ r[j] lane i): 32-bit and 64-bit interleaves within
// 128-bit lanes, then two rounds of 128-bit lane shuffles.
static inline void vtranspose(Vf* r) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i].v, r[2 * i + 1].v);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i].v, r[2 * i + 1].v);
  }
  for (int i = 0; i < 4; ++i) {  // u[4i+c], 128-bit lane l: rows 4i..4i+3 of column 4l+c
    u[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 x0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), x1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 y0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44), y1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    r[c].v = _mm512_shuffle_f32x4(x0, y0, 0x88);
    r[4 + c].v = _mm512_shuffle_f32x4(x0, y0, 0xDD);
    r[8 + c].v = _mm512_shuffle_f32x4(x1, y1, 0x88);
    r[12 + c].v = _mm512_shuffle_f32x4(x1, y1, 0xDD);
  }
}

#elif defined(RED_ISA_AVX2)

struct Vf { __m256 v; };
constexpr int W = 8;
static inline Vf vload(const float* p) { return {_mm256_loadu_ps(p)}; }
static inline void vstore(float* p, Vf a) { _mm256_storeu_ps(p, a.v); }
static inline __m256i tailMask(int n) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
}
static inline Vf vloadPart(const float* p, int n) { return {_mm256_maskload_ps(p, tailMask(n))}; }
// W bf16 values (raw bits) widened to fp32, exactly: the bits shifted into the top half.
static inline Vf vload(const uint16_t* p) {
  return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p)), 16))};
}
static inline Vf vloadPart(const uint16_t* p, int n) {
  alignas(16) uint16_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < n; ++i) t[i] = p[i];
  return vload(t);
}
static inline void vstorePart(float* p, Vf a, int n) { _mm256_maskstore_ps(p, tailMask(n), a.v); }
static inline Vf vset1(float x) { return {_mm256_set1_ps(x)}; }
static inline Vf vzero() { return {_mm256_setzero_ps()}; }
static inline Vf vadd(Vf a, Vf b) { return {_mm256_add_ps(a.v, b.v)}; }
static inline Vf vsub(Vf a, Vf b) { return {_mm256_sub_ps(a.v, b.v)}; }
static inline Vf vmul(Vf a, Vf b) { return {_mm256_mul_ps(a.v, b.v)}; }
static inline Vf vdiv(Vf a, Vf b) { return {_mm256_div_ps(a.v, b.v)}; }
static inline Vf vmax(Vf a, Vf b) { return {_mm256_max_ps(a.v, b.v)}; }
static inline Vf vmin(Vf a, Vf b) { return {_mm256_min_ps(a.v, b.v)}; }
static inline Vf vsqrt(Vf a) { return {_mm256_sqrt_ps(a.v)}; }
static inline Vf vfmadd(Vf a, Vf b, Vf c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
static inline Vf vfnmadd(Vf a, Vf b, Vf c) { return {_mm256_fnmadd_ps(a.v, b.v, c.v)}; }
static inline Vf vround(Vf a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
// p·2^n by adding n to the exponent field; valid for n in [−126, 127] (vexp clamps to that).
static inline Vf vscale2(Vf p, Vf n) {
  const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n.v), 23);
  return {_mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p.v), e))};
}
static inline float vhsum(Vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline float vhmax(Vf a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// r[0..7] ← its transpose: interleaves within 128-bit lanes, then a 128-bit lane exchange.
static inline void vtranspose(Vf* r) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i].v, r[2 * i + 1].v);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i].v, r[2 * i + 1].v);
  }
  for (int i = 0; i < 2; ++i) {  // u[4i+c], 128-bit lane l: rows 4i..4i+3 of column 4l+c
    u[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    r[c].v = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c].v = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

#elif defined(RED_ISA_PORTABLE)

// Plain C++: loops over 8 lanes that the compiler may vectorise for the baseline target.
struct Vf { float v[8]; };
constexpr int W = 8;
#define RED_LANES(expr) Vf r; for (int i = 0; i < W; ++i) r.v[i] = (expr); return r
static inline Vf vload(const float* p) { RED_LANES(p[i]); }
static inline void vstore(float* p, Vf a) { for (int i = 0; i < W; ++i) p[i] = a.v[i]; }
static inline Vf vloadPart(const float* p, int n) { RED_LANES(i < n ? p[i] : 0.0f); }
static inline float bf16Widen(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
// W bf16 values (raw bits) widened to fp32, exactly.
static inline Vf vload(const uint16_t* p) { RED_LANES(bf16Widen(p[i])); }
static inline Vf vloadPart(const uint16_t* p, int n) { RED_LANES(i < n ? bf16Widen(p[i]) : 0.0f); }
static inline void vstorePart(float* p, Vf a, int n) { for (int i = 0; i < n; ++i) p[i] = a.v[i]; }
static inline Vf vset1(float x) { RED_LANES(x); }
static inline Vf vzero() { RED_LANES(0.0f); }
static inline Vf vadd(Vf a, Vf b) { RED_LANES(a.v[i] + b.v[i]); }
static inline Vf vsub(Vf a, Vf b) { RED_LANES(a.v[i] - b.v[i]); }
static inline Vf vmul(Vf a, Vf b) { RED_LANES(a.v[i] * b.v[i]); }
static inline Vf vdiv(Vf a, Vf b) { RED_LANES(a.v[i] / b.v[i]); }
static inline Vf vmax(Vf a, Vf b) { RED_LANES(a.v[i] > b.v[i] ? a.v[i] : b.v[i]); }
static inline Vf vmin(Vf a, Vf b) { RED_LANES(a.v[i] < b.v[i] ? a.v[i] : b.v[i]); }
static inline Vf vsqrt(Vf a) { RED_LANES(std::sqrt(a.v[i])); }
static inline Vf vfmadd(Vf a, Vf b, Vf c) { RED_LANES(a.v[i] * b.v[i] + c.v[i]); }
static inline Vf vfnmadd(Vf a, Vf b, Vf c) { RED_LANES(c.v[i] - a.v[i] * b.v[i]); }
static inline Vf vround(Vf a) { RED_LANES(std::nearbyint(a.v[i])); }
static inline Vf vscale2(Vf p, Vf n) { RED_LANES(std::ldexp(p.v[i], (int)n.v[i])); }
static inline float vhsum(Vf a) { float s = 0; for (int i = 0; i < W; ++i) s += a.v[i]; return s; }
static inline float vhmax(Vf a) { float s = a.v[0]; for (int i = 1; i < W; ++i) s = a.v[i] > s ? a.v[i] : s; return s; }
static inline void vtranspose(Vf* r) {
  for (int i = 0; i < W; ++i)
    for (int j = i + 1; j < W; ++j) {
      const float x = r[i].v[j];
      r[i].v[j] = r[j].v[i];
      r[j].v[i] = x;
    }
}
#undef RED_LANES

#else
#error "define one of RED_ISA_AVX512, RED_ISA_AVX2, RED_ISA_PORTABLE"
#endif

// e^x to ~2 ulp for x in [−87, 88] (clamped outside): x = n·ln2 + r with |r| ≤ ln2/2, e^r by its
// degree-7 Taylor polynomial (truncation error r^8/8! < 2e-8), then scaled by 2^n.
static inline Vf vexp(Vf x) {
  x = vmin(vmax(x, vset1(-87.0f)), vset1(88.0f));
  const Vf n = vround(vmul(x, vset1(1.44269504088896341f)));
  Vf r = vfnmadd(n, vset1(0.693145751953125f), x);        // ln2 split in a high part exact in fp32
  r = vfnmadd(n, vset1(1.428606765330187e-06f), r);        // and the low remainder
  Vf p = vset1(1.0f / 5040);
  p = vfmadd(p, r, vset1(1.0f / 720));
  p = vfmadd(p, r, vset1(1.0f / 120));
  p = vfmadd(p, r, vset1(1.0f / 24));
  p = vfmadd(p, r, vset1(1.0f / 6));
  p = vfmadd(p, r, vset1(0.5f));
  p = vfmadd(p, r, vset1(1.0f));
  p = vfmadd(p, r, vset1(1.0f));
  return vscale2(p, n);
}
