// The N-API face of the native engine: picks the kernel table for this CPU once at load
// (AVX-512, else AVX2+FMA, else portable; RED_ISA=avx2|portable forces a lower one), then binds
// one JavaScript function per Backend method (src/engine/backend.ts) plus isa() and threads().
// Every binding checks argument types, that each buffer holds what the sizes imply, and the
// index arrays (ids, cuSeqlens, slots, lens, targets), since a kernel would otherwise write
// outside JavaScript's memory; a violation throws a TypeError/RangeError naming the argument.
#include <napi.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>

#include "engine.h"

namespace {

using red::i64;
const red::Kernels* K = nullptr;
const red::Bf16Kernels* KB = nullptr;  // null: no avx512_bf16, the fp32 fallbacks below run

// Without avx512_bf16: bf16 operands widened to fp32 (exact) and the fp32 kernels run; the same
// results up to fp32 summation order, slower and with twice the memory traffic.
// out(n) = x(n) widened from bf16 bits to fp32: exact, the bits shifted up.
void widenBits(float* out, const uint16_t* x, i64 n) {
  for (i64 i = 0; i < n; ++i) {
    const uint32_t u = (uint32_t)x[i] << 16;
    std::memcpy(out + i, &u, 4);
  }
}
float* widened(red::Scratch& s, const uint16_t* x, i64 n) {
  float* f = s.get((size_t)n);
  widenBits(f, x, n);
  return f;
}
float roundedToBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return x;
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&x, &u, 4);
  return x;
}
// x(n) rounded to bf16 values, kept in fp32.
float* rounded(red::Scratch& s, const float* x, i64 n) {
  float* f = s.get((size_t)n);
  for (i64 i = 0; i < n; ++i) f[i] = roundedToBf16(x[i]);
  return f;
}
void matmulBf16Fallback(float* out, const uint16_t* a, const uint16_t* b, i64 M, i64 N, i64 Kd, bool ta, bool tb,
                        bool acc) {
  static red::Scratch sa, sb;
  K->matmul(out, widened(sa, a, M * Kd), widened(sb, b, Kd * N), M, N, Kd, ta, tb, acc);
}
void roundBf16Fallback(uint16_t* out, const float* x, i64 n) {
  for (i64 i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i, 4);
    out[i] = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40) : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}
// Rounded: dout and inp rounded to bf16 values, as bf16.cc rounds them. Split: bf16.cc's pairs
// carry them to ~2⁻¹⁷, and fp32 products on the unrounded operands are what that approximates.
void linearBackwardBf16Fallback(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                                const uint16_t* w, i64 T, i64 C, i64 OC, bool split) {
  static red::Scratch sd, sx, sw;
  const float* d = split ? dout : rounded(sd, dout, T * OC);
  const float* x = split ? inp : rounded(sx, inp, T * C);
  K->linearBackward(dinp, dw, nullptr, d, x, widened(sw, w, OC * C), T, C, OC);
  if (db)
    for (i64 t = 0; t < T; ++t)
      for (i64 o = 0; o < OC; ++o) db[o] += dout[t * OC + o];
}
void linearForwardBf16Fallback(float* out, const float* inp, const uint16_t* w, const float* bias, i64 T, i64 C,
                               i64 OC) {
  static red::Scratch sx, sw;
  K->linearForward(out, rounded(sx, inp, T * C), widened(sw, w, OC * C), bias, T, C, OC);
}

// Reads the arguments of one call; the first problem is thrown and later reads return defaults.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* fn) : info_(info), env_(info.Env()), fn_(fn) {}
  bool failed() const { return failed_; }

  i64 size(size_t i, const char* name) {
    if (failed_) return 0;
    if (!info_[i].IsNumber()) return typeError(name, "a number"), 0;
    const double d = info_[i].As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d != (double)(i64)d || d > 9.0e15) return rangeError(std::string(name) + " must be a non-negative integer"), 0;
    return (i64)d;
  }
  double number(size_t i, const char* name) {
    if (failed_) return 0;
    if (!info_[i].IsNumber()) return typeError(name, "a number"), 0;
    return info_[i].As<Napi::Number>().DoubleValue();
  }
  bool boolean(size_t i, const char* name) {
    if (failed_) return false;
    if (!info_[i].IsBoolean()) return typeError(name, "a boolean"), false;
    return info_[i].As<Napi::Boolean>().Value();
  }
  // A Float32Array with at least `need` elements; null/undefined allowed when `nullable`.
  float* f32(size_t i, const char* name, i64 need, bool nullable = false) {
    return typed<float>(i, name, need, nullable, napi_float32_array, "Float32Array");
  }
  int32_t* i32(size_t i, const char* name, i64 need) {
    return typed<int32_t>(i, name, need, false, napi_int32_array, "Int32Array");
  }
  // Host results (chooseToken's id and logprob).
  double* f64(size_t i, const char* name, i64 need) {
    return typed<double>(i, name, need, false, napi_float64_array, "Float64Array");
  }
  // bf16 tensors travel as Uint16Array (the raw bfloat16 bits).
  uint16_t* bf16(size_t i, const char* name, i64 need) {
    return typed<uint16_t>(i, name, need, false, napi_uint16_array, "Uint16Array (bf16 bits)");
  }
  i64 lengthOf(size_t i) const {  // element count of a typed array already checked by f32/i32
    return (i64)info_[i].As<Napi::TypedArray>().ElementLength();
  }
  void rangeError(const std::string& msg) {
    if (failed_) return;
    failed_ = true;
    Napi::RangeError::New(env_, std::string(fn_) + ": " + msg).ThrowAsJavaScriptException();
  }

 private:
  void typeError(const char* name, const char* what) {
    failed_ = true;
    Napi::TypeError::New(env_, std::string(fn_) + ": " + name + " must be " + what).ThrowAsJavaScriptException();
  }
  template <class T>
  T* typed(size_t i, const char* name, i64 need, bool nullable, napi_typedarray_type type, const char* tname) {
    if (failed_) return nullptr;
    const Napi::Value v = info_[i];
    if (nullable && (v.IsNull() || v.IsUndefined())) return nullptr;
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type)
      return typeError(name, nullable ? (std::string("a ") + tname + " or null").c_str() : (std::string("a ") + tname).c_str()), nullptr;
    auto arr = v.As<Napi::TypedArrayOf<T>>();
    if ((i64)arr.ElementLength() < need) {
      rangeError(std::string(name) + " has " + std::to_string(arr.ElementLength()) + " elements, the sizes need " +
                 std::to_string(need));
      return nullptr;
    }
    return arr.Data();  // already offset to the view's first element (napi_get_typedarray_info)
  }
  const Napi::CallbackInfo& info_;
  Napi::Env env_;
  const char* fn_;
  bool failed_ = false;
};

// ids[t] in [0, V) for t < T.
bool checkIds(Args& a, const int32_t* ids, i64 T, i64 V, const char* name) {
  for (i64 t = 0; t < T; ++t)
    if (ids[t] < 0 || ids[t] >= V) {
      a.rangeError(std::string(name) + "[" + std::to_string(t) + "] = " + std::to_string(ids[t]) + " is outside [0, " +
                   std::to_string(V) + ")");
      return false;
    }
  return true;
}

bool checkHeads(Args& a, i64 NH, i64 NKV, i64 HD) {
  if (NKV == 0 || NH % NKV != 0) return a.rangeError("NH must be a positive multiple of NKV"), false;
  if (HD == 0 || HD > 256) return a.rangeError("HD must be in [1, 256]"), false;
  return true;
}





// The fp32 and bf16 twins of a product binding differ only in the weight operand's element type and
// in the kernel that runs (the bf16 table, or its fp32 fallback without avx512_bf16): one template
// each, instantiated for both.
template <bool Bf16>
using WeightT = std::conditional_t<Bf16, uint16_t, float>;

template <bool Bf16>
const WeightT<Bf16>* weights(Args& a, size_t i, const char* name, i64 n) {
  if constexpr (Bf16) return a.bf16(i, name, n);
  else return a.f32(i, name, n);
}

template <bool Bf16>
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Args a(info, Bf16 ? "matmulBf16" : "matmul");
  const i64 M = a.size(3, "M"), N = a.size(4, "N"), Kd = a.size(5, "K");
  const bool ta = a.boolean(6, "transA"), tb = a.boolean(7, "transB"), acc = a.boolean(8, "accumulate");
  float* out = a.f32(0, "out", M * N);
  const auto* x = weights<Bf16>(a, 1, "a", M * Kd);
  const auto* y = weights<Bf16>(a, 2, "b", Kd * N);
  if (a.failed()) return info.Env().Undefined();
  if constexpr (Bf16) (KB ? KB->matmul : matmulBf16Fallback)(out, x, y, M, N, Kd, ta, tb, acc);
  else K->matmul(out, x, y, M, N, Kd, ta, tb, acc);
  return info.Env().Undefined();
}

template <bool Bf16>
Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  Args a(info, Bf16 ? "linearForwardBf16" : "linearForward");
  const i64 T = a.size(4, "T"), C = a.size(5, "C"), OC = a.size(6, "OC");
  float* out = a.f32(0, "out", T * OC);
  const float* inp = a.f32(1, "inp", T * C);
  const auto* w = weights<Bf16>(a, 2, "weight", OC * C);
  const float* bias = a.f32(3, "bias", OC, true);
  if (a.failed()) return info.Env().Undefined();
  if constexpr (Bf16) (KB ? KB->linearForward : linearForwardBf16Fallback)(out, inp, w, bias, T, C, OC);
  else K->linearForward(out, inp, w, bias, T, C, OC);
  return info.Env().Undefined();
}

template <bool Bf16>
Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  Args a(info, Bf16 ? "linearBackwardBf16" : "linearBackward");
  const i64 T = a.size(6, "T"), C = a.size(7, "C"), OC = a.size(8, "OC");
  float* dinp = a.f32(0, "dinp", T * C, true);
  float* dw = a.f32(1, "dweight", OC * C);
  float* db = a.f32(2, "dbias", OC, true);
  const float* dout = a.f32(3, "dout", T * OC);
  const float* inp = a.f32(4, "inp", T * C);
  const auto* w = weights<Bf16>(a, 5, "weight", OC * C);
  const bool split = Bf16 && a.boolean(9, "split");
  if (a.failed()) return info.Env().Undefined();
  if constexpr (Bf16)
    (KB ? KB->linearBackward : linearBackwardBf16Fallback)(dinp, dw, db, dout, inp, w, T, C, OC, split);
  else K->linearBackward(dinp, dw, db, dout, inp, w, T, C, OC);
  return info.Env().Undefined();
}

Napi::Value RoundBf16(const Napi::CallbackInfo& info) {
  Args a(info, "roundBf16");
  const i64 n = a.size(2, "n");
  uint16_t* out = a.bf16(0, "out", n);
  const float* x = a.f32(1, "x", n);
  if (!a.failed()) (KB ? KB->round : roundBf16Fallback)(out, x, n);
  return info.Env().Undefined();
}

Napi::Value ChooseToken(const Napi::CallbackInfo& info) {
  Args a(info, "chooseToken");
  const i64 V = a.size(2, "V");
  const double invT = a.number(3, "invT"), u = a.number(4, "u");
  double* out = a.f64(0, "out", 2);
  const float* z = a.f32(1, "logits", V);
  if (!a.failed() && V == 0) a.rangeError("V must be at least 1");
  if (!a.failed() && !(invT >= 0)) a.rangeError("invT must be ≥ 0");
  if (!a.failed() && !(u >= 0 && u < 1)) a.rangeError("u must be in [0, 1)");
  if (a.failed()) return info.Env().Undefined();
  K->chooseToken(out, z, V, invT, u);
  return info.Env().Undefined();
}

Napi::Value ChooseTokenTruncated(const Napi::CallbackInfo& info) {
  Args a(info, "chooseTokenTruncated");
  const i64 V = a.size(2, "V");
  const double invT = a.number(3, "invT");
  const i64 topK = a.size(4, "topK");
  const double topP = a.number(5, "topP"), u = a.number(6, "u");
  double* out = a.f64(0, "out", 2);
  const float* z = a.f32(1, "logits", V);
  if (!a.failed() && V == 0) a.rangeError("V must be at least 1");
  if (!a.failed() && !(invT > 0)) a.rangeError("invT must be > 0 (greedy is chooseToken)");
  if (!a.failed() && !(topP > 0 && topP <= 1)) a.rangeError("topP must be in (0, 1]");
  if (!a.failed() && !(u >= 0 && u < 1)) a.rangeError("u must be in [0, 1)");
  if (a.failed()) return info.Env().Undefined();
  K->chooseTokenTruncated(out, z, V, invT, topK, topP, u);
  return info.Env().Undefined();
}

// peak(dtype "fp32" | "bf16" | "amx", seconds): GFLOP/s of a register-only loop on every thread;
// null for bf16 without avx512_bf16 and amx without AMX (no such unit to measure).
Napi::Value Peak(const Napi::CallbackInfo& info) {
  Args a(info, "peak");
  const double seconds = a.number(1, "seconds");
  if (a.failed()) return info.Env().Undefined();
  if (!info[0].IsString()) {
    Napi::TypeError::New(info.Env(), "peak: dtype must be a string").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  const std::string dtype = info[0].As<Napi::String>().Utf8Value();
  if (dtype == "fp32") return Napi::Number::New(info.Env(), K->peakFp32(seconds));
  if (dtype == "bf16") return KB ? Napi::Number::New(info.Env(), KB->peak(seconds)) : info.Env().Null();
  if (dtype == "amx") {
    const double g = KB ? KB->peakAmx(seconds) : 0;
    return g > 0 ? Napi::Number::New(info.Env(), g) : info.Env().Null();
  }
  a.rangeError("dtype must be fp32, bf16 or amx (got \"" + dtype + "\")");
  return info.Env().Undefined();
}



Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingForward");
  const i64 T = a.size(3, "T"), C = a.size(4, "C");
  float* out = a.f32(0, "out", T * C);
  const int32_t* ids = a.i32(1, "ids", T);
  const float* wte = a.f32(2, "wte", 0);
  if (a.failed() || !checkIds(a, ids, T, C ? a.lengthOf(2) / C : 0, "ids")) return info.Env().Undefined();
  K->embeddingForward(out, ids, wte, T, C);
  return info.Env().Undefined();
}

// bf16 rows widened to fp32 (exact: the bits shifted up), for a bf16 model's embedding.
Napi::Value EmbeddingForwardBf16(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingForwardBf16");
  const i64 T = a.size(3, "T"), C = a.size(4, "C");
  float* out = a.f32(0, "out", T * C);
  const int32_t* ids = a.i32(1, "ids", T);
  const uint16_t* wte = a.bf16(2, "wte", 0);
  if (a.failed() || !checkIds(a, ids, T, C ? a.lengthOf(2) / C : 0, "ids")) return info.Env().Undefined();
  for (i64 t = 0; t < T; ++t) widenBits(out + t * C, wte + (i64)ids[t] * C, C);
  return info.Env().Undefined();
}

// out(n) = x(n) widened from bf16 bits to fp32, exactly (a bf16 model's norms and biases).
Napi::Value WidenBf16(const Napi::CallbackInfo& info) {
  Args a(info, "widenBf16");
  const i64 n = a.size(2, "n");
  float* out = a.f32(0, "out", n);
  const uint16_t* x = a.bf16(1, "x", n);
  if (!a.failed()) widenBits(out, x, n);
  return info.Env().Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Args a(info, "embeddingBackward");
  const i64 T = a.size(3, "T"), C = a.size(4, "C");
  float* dwte = a.f32(0, "dwte", 0);
  const float* dout = a.f32(1, "dout", T * C);
  const int32_t* ids = a.i32(2, "ids", T);
  if (a.failed() || !checkIds(a, ids, T, C ? a.lengthOf(0) / C : 0, "ids")) return info.Env().Undefined();
  K->embeddingBackward(dwte, dout, ids, T, C);
  return info.Env().Undefined();
}

Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormForward");
  const i64 T = a.size(4, "T"), C = a.size(5, "C");
  const double eps = a.number(6, "eps");
  float* out = a.f32(0, "out", T * C);
  float* rstd = a.f32(1, "rstd", T);
  const float* inp = a.f32(2, "inp", T * C);
  const float* w = a.f32(3, "weight", C);
  if (!a.failed()) K->rmsnormForward(out, rstd, inp, w, T, C, (float)eps);
  return info.Env().Undefined();
}

Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "rmsnormBackward");
  const i64 T = a.size(6, "T"), C = a.size(7, "C");
  float* dinp = a.f32(0, "dinp", T * C);
  float* dw = a.f32(1, "dweight", C);
  const float* dout = a.f32(2, "dout", T * C);
  const float* inp = a.f32(3, "inp", T * C);
  const float* w = a.f32(4, "weight", C);
  const float* rstd = a.f32(5, "rstd", T);
  if (!a.failed()) K->rmsnormBackward(dinp, dw, dout, inp, w, rstd, T, C);
  return info.Env().Undefined();
}

template <bool Forward>
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Args a(info, Forward ? "ropeForward" : "ropeBackward");
  const i64 T = a.size(2, "T"), NH = a.size(3, "NH"), HD = a.size(4, "HD");
  const double theta = a.number(5, "theta");
  float* x = a.f32(0, Forward ? "x" : "dx", T * NH * HD);
  const int32_t* pos = a.i32(1, "positions", T);
  if (!a.failed() && HD % 2 != 0) a.rangeError("HD must be even");
  if (a.failed()) return info.Env().Undefined();
  (Forward ? K->ropeForward : K->ropeBackward)(x, pos, T, NH, HD, theta);
  return info.Env().Undefined();
}

// cuSeqlens: B+1 non-decreasing offsets from 0 to T.
bool checkCuSeqlens(Args& a, const int32_t* cu, i64 B, i64 T) {
  if (cu[0] != 0 || cu[B] != T) return a.rangeError("cuSeqlens must start at 0 and end at T"), false;
  for (i64 b = 0; b < B; ++b)
    if (cu[b + 1] < cu[b]) return a.rangeError("cuSeqlens must be non-decreasing"), false;
  return true;
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionForward");
  const i64 B = a.size(6, "B"), T = a.size(7, "T"), NH = a.size(8, "NH"), NKV = a.size(9, "NKV"), HD = a.size(10, "HD");
  float* out = a.f32(0, "out", T * NH * HD);
  float* lse = a.f32(1, "lse", T * NH);
  const float* q = a.f32(2, "q", T * NH * HD);
  const float* k = a.f32(3, "k", T * NKV * HD);
  const float* v = a.f32(4, "v", T * NKV * HD);
  const int32_t* cu = a.i32(5, "cuSeqlens", B + 1);
  if (a.failed() || !checkHeads(a, NH, NKV, HD) || !checkCuSeqlens(a, cu, B, T)) return info.Env().Undefined();
  K->attentionForward(out, lse, q, k, v, cu, B, T, NH, NKV, HD);
  return info.Env().Undefined();
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Args a(info, "attentionBackward");
  const i64 B = a.size(10, "B"), T = a.size(11, "T"), NH = a.size(12, "NH"), NKV = a.size(13, "NKV"),
            HD = a.size(14, "HD");
  float* dq = a.f32(0, "dq", T * NH * HD);
  float* dk = a.f32(1, "dk", T * NKV * HD);
  float* dv = a.f32(2, "dv", T * NKV * HD);
  const float* dout = a.f32(3, "dout", T * NH * HD);
  const float* q = a.f32(4, "q", T * NH * HD);
  const float* k = a.f32(5, "k", T * NKV * HD);
  const float* v = a.f32(6, "v", T * NKV * HD);
  const float* out = a.f32(7, "out", T * NH * HD);
  const float* lse = a.f32(8, "lse", T * NH);
  const int32_t* cu = a.i32(9, "cuSeqlens", B + 1);
  if (a.failed() || !checkHeads(a, NH, NKV, HD) || !checkCuSeqlens(a, cu, B, T)) return info.Env().Undefined();
  K->attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, cu, B, T, NH, NKV, HD);
  return info.Env().Undefined();
}

// The fp32-cache and bf16-cache entry points share the checks.
template <bool Bf16>
Napi::Value AttentionDecode(const Napi::CallbackInfo& info) {
  Args a(info, Bf16 ? "attentionDecodeBf16" : "attentionDecode");
  const i64 B = a.size(6, "B"), NH = a.size(7, "NH"), NKV = a.size(8, "NKV"), HD = a.size(9, "HD"),
            maxLen = a.size(10, "maxLen");
  float* out = a.f32(0, "out", B * NH * HD);
  const float* q = a.f32(1, "q", B * NH * HD);
  using KV = std::conditional_t<Bf16, uint16_t, float>;
  const KV* kc;
  const KV* vc;
  if constexpr (Bf16) {
    kc = a.bf16(2, "kCache", 0);
    vc = a.bf16(3, "vCache", 0);
  } else {
    kc = a.f32(2, "kCache", 0);
    vc = a.f32(3, "vCache", 0);
  }
  const int32_t* slots = a.i32(4, "slots", B);
  const int32_t* lens = a.i32(5, "lens", B);
  if (a.failed() || !checkHeads(a, NH, NKV, HD)) return info.Env().Undefined();
  const i64 slotSize = maxLen * NKV * HD;
  const i64 S = slotSize ? std::min(a.lengthOf(2), a.lengthOf(3)) / slotSize : 0;
  if (!checkIds(a, slots, B, S, "slots")) return info.Env().Undefined();
  for (i64 b = 0; b < B; ++b)
    if (lens[b] < 1 || lens[b] > maxLen) {
      a.rangeError("lens[" + std::to_string(b) + "] = " + std::to_string(lens[b]) + " is outside [1, maxLen]");
      return info.Env().Undefined();
    }
  if constexpr (Bf16) K->attentionDecodeBf16(out, q, kc, vc, slots, lens, B, NH, NKV, HD, maxLen);
  else K->attentionDecode(out, q, kc, vc, slots, lens, B, NH, NKV, HD, maxLen);
  return info.Env().Undefined();
}

Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluForward");
  const i64 T = a.size(2, "T"), I = a.size(3, "I");
  float* out = a.f32(0, "out", T * I);
  const float* gateUp = a.f32(1, "gateUp", T * 2 * I);
  if (!a.failed()) K->swigluForward(out, gateUp, T, I);
  return info.Env().Undefined();
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  Args a(info, "swigluBackward");
  const i64 T = a.size(3, "T"), I = a.size(4, "I");
  float* dgateUp = a.f32(0, "dgateUp", T * 2 * I);
  const float* dout = a.f32(1, "dout", T * I);
  const float* gateUp = a.f32(2, "gateUp", T * 2 * I);
  if (!a.failed()) K->swigluBackward(dgateUp, dout, gateUp, T, I);
  return info.Env().Undefined();
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  Args a(info, "add");
  const i64 n = a.size(3, "n");
  float* out = a.f32(0, "out", n);
  const float* x = a.f32(1, "a", n);
  const float* y = a.f32(2, "b", n);
  if (!a.failed()) K->add(out, x, y, n);
  return info.Env().Undefined();
}

// Rows of a column block: plain memcpy per row (the split of a fused projection is memory-bound),
// rows across threads when large.
Napi::Value CopyColumns(const Napi::CallbackInfo& info) {
  Args a(info, "copyColumns");
  const i64 rows = a.size(2, "rows"), cols = a.size(3, "cols");
  const i64 dstStride = a.size(4, "dstStride"), dstCol = a.size(5, "dstCol");
  const i64 srcStride = a.size(6, "srcStride"), srcCol = a.size(7, "srcCol");
  if (!a.failed() && (dstCol + cols > dstStride || srcCol + cols > srcStride))
    a.rangeError("the column block runs past a row (col + cols > stride)");
  if (a.failed()) return info.Env().Undefined();
  const i64 needD = rows > 0 ? (rows - 1) * dstStride + dstCol + cols : 0;
  const i64 needS = rows > 0 ? (rows - 1) * srcStride + srcCol + cols : 0;
  float* dst = a.f32(0, "dst", needD);
  const float* src = a.f32(1, "src", needS);
  if (a.failed()) return info.Env().Undefined();
#pragma omp parallel for schedule(static) if (rows * cols > red::kParallelMin)
  for (i64 r = 0; r < rows; ++r)
    std::memcpy(dst + r * dstStride + dstCol, src + r * srcStride + srcCol, (size_t)cols * sizeof(float));
  return info.Env().Undefined();
}

// targets[t] < V; negative means "no target" (see the reference's loss head).
bool checkTargets(Args& a, const int32_t* targets, i64 T, i64 V) {
  for (i64 t = 0; t < T; ++t)
    if (targets[t] >= V) {
      a.rangeError("targets[" + std::to_string(t) + "] = " + std::to_string(targets[t]) + " is not below V = " +
                   std::to_string(V));
      return false;
    }
  return true;
}

Napi::Value LossHeadForward(const Napi::CallbackInfo& info) {
  Args a(info, "lossHeadForward");
  const i64 T = a.size(4, "T"), V = a.size(5, "V");
  float* logprob = a.f32(0, "logprob", T);
  float* entropy = a.f32(1, "entropy", T);
  const float* logits = a.f32(2, "logits", T * V);
  const int32_t* targets = a.i32(3, "targets", T);
  if (a.failed() || !checkTargets(a, targets, T, V)) return info.Env().Undefined();
  K->lossHeadForward(logprob, entropy, logits, targets, T, V);
  return info.Env().Undefined();
}

Napi::Value LossHeadBackward(const Napi::CallbackInfo& info) {
  Args a(info, "lossHeadBackward");
  const i64 T = a.size(5, "T"), V = a.size(6, "V");
  float* dlogits = a.f32(0, "dlogits", T * V);
  const float* logits = a.f32(1, "logits", T * V);
  const int32_t* targets = a.i32(2, "targets", T);
  const float* cl = a.f32(3, "coefLogprob", T);
  const float* ce = a.f32(4, "coefEntropy", T);
  if (a.failed() || !checkTargets(a, targets, T, V)) return info.Env().Undefined();
  K->lossHeadBackward(dlogits, logits, targets, cl, ce, T, V);
  return info.Env().Undefined();
}

Napi::Value Adamw(const Napi::CallbackInfo& info) {
  Args a(info, "adamw");
  const i64 n = a.size(4, "n");
  const double lr = a.number(5, "lr"), b1 = a.number(6, "beta1"), b2 = a.number(7, "beta2"), eps = a.number(8, "eps"),
               wd = a.number(9, "weightDecay"), step = a.number(10, "step");
  float* p = a.f32(0, "params", n);
  const float* g = a.f32(1, "grads", n);
  float* m = a.f32(2, "m", n);
  float* v = a.f32(3, "v", n);
  if (!a.failed() && !(step >= 1)) a.rangeError("step counts from 1");
  if (!a.failed()) K->adamw(p, g, m, v, n, lr, b1, b2, eps, wd, step);
  return info.Env().Undefined();
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Args a(info, "sumSquares");
  const i64 n = a.size(1, "n");
  const float* x = a.f32(0, "x", n);
  if (a.failed()) return info.Env().Undefined();
  return Napi::Number::New(info.Env(), K->sumSquares(x, n));
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  Args a(info, "scale");
  const i64 n = a.size(2, "n");
  const double s = a.number(1, "s");
  float* x = a.f32(0, "x", n);
  if (!a.failed()) K->scale(x, (float)s, n);
  return info.Env().Undefined();
}

// The best kernel table this CPU runs, or the one RED_ISA names (never one the CPU lacks).
const red::Kernels* chooseKernels(Napi::Env env) {
  const red::Kernels* best = &red::portable::kernels;
  bool has512 = false, has2 = false;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  has512 = has2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (has512) best = &red::avx512::kernels;
  else if (has2) best = &red::avx2::kernels;
#endif
  const char* want = std::getenv("RED_ISA");
  if (!want || !*want) return best;
  const std::string w(want);
  if (w == "portable") return &red::portable::kernels;
#if defined(__x86_64__) || defined(__i386__)
  if (w == "avx2" && has2) return &red::avx2::kernels;
  if (w == "avx512" && has512) return &red::avx512::kernels;
#endif
  if (w == "avx2" || w == "avx512") {
    std::fprintf(stderr, "red: RED_ISA=%s is not supported by this CPU; using %s\n", want, best->isa);
    return best;
  }
  Napi::Error::New(env, "RED_ISA must be avx512, avx2 or portable (got \"" + w + "\")").ThrowAsJavaScriptException();
  return nullptr;
}

// The bf16 table when this CPU has avx512_bf16 and the AVX-512 fp32 table runs (RED_ISA below
// avx512 turns it off too, so every fallback can be tested on this machine).
const red::Bf16Kernels* chooseBf16Kernels() {
#if defined(__x86_64__) || defined(__i386__)
  if (K == &red::avx512::kernels && __builtin_cpu_supports("avx512bf16")) return &red::avx512bf16::kernels;
#endif
  return nullptr;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  K = chooseKernels(env);
  if (!K) return exports;
  KB = chooseBf16Kernels();
  // One row per Backend method (src/engine/backend.ts): its JavaScript name and its binding.
  static const std::pair<const char*, Napi::Function::Callback> bindings[] = {
      {"matmul", Matmul<false>},
      {"matmulBf16", Matmul<true>},
      {"linearForward", LinearForward<false>},
      {"linearForwardBf16", LinearForward<true>},
      {"linearBackward", LinearBackward<false>},
      {"linearBackwardBf16", LinearBackward<true>},
      {"roundBf16", RoundBf16},
      {"peak", Peak},
      {"chooseToken", ChooseToken},
      {"chooseTokenTruncated", ChooseTokenTruncated},
      {"embeddingForward", EmbeddingForward},
      {"embeddingForwardBf16", EmbeddingForwardBf16},
      {"widenBf16", WidenBf16},
      {"embeddingBackward", EmbeddingBackward},
      {"rmsnormForward", RmsnormForward},
      {"rmsnormBackward", RmsnormBackward},
      {"ropeForward", Rope<true>},
      {"ropeBackward", Rope<false>},
      {"attentionForward", AttentionForward},
      {"attentionBackward", AttentionBackward},
      {"attentionDecode", AttentionDecode<false>},
      {"attentionDecodeBf16", AttentionDecode<true>},
      {"swigluForward", SwigluForward},
      {"swigluBackward", SwigluBackward},
      {"add", Add},
      {"copyColumns", CopyColumns},
      {"lossHeadForward", LossHeadForward},
      {"lossHeadBackward", LossHeadBackward},
      {"adamw", Adamw},
      {"sumSquares", SumSquares},
      {"scale", Scale},
  };
  for (const auto& [name, fn] : bindings) exports.Set(name, Napi::Function::New(env, fn));
  exports.Set("isa", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::String::New(info.Env(), K->isa);
              }));
  exports.Set("bf16Isa", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::String::New(info.Env(), KB ? KB->unit() : "fp32 fallback");
              }));
  exports.Set("threads", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                return Napi::Number::New(info.Env(), omp_get_max_threads());
              }));
  return exports;
}

}  // namespace

NODE_API_MODULE(red_native, Init)
