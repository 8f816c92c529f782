{
  # The native engine: one addon, kernels compiled per instruction set and chosen at run time
  # (src/engine/native.ts asks the addon which one it picked).
  # openmp=false (scripts/build-native.mjs retries with it when the first build fails) builds
  # without OpenMP: single-threaded, but still the native kernels.
  "variables": { "openmp%": "true" },
  "targets": [
    {
      "target_name": "red_native",
      "sources": [
        "native/addon.cc",
        "native/pool.cc",
        "native/isa_avx512.cc",
        "native/isa_avx2.cc",
        "native/isa_portable.cc",
        "native/bf16.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O3", "-fno-math-errno"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++1y", "-std=gnu++17"],
      "conditions": [
        ["openmp=='true'", { "cflags_cc": ["-fopenmp"], "ldflags": ["-fopenmp"] },
                            { "cflags_cc": ["-Wno-unknown-pragmas"] }]
      ],
      "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-O3"] }
    }
  ]
}
