// Scalar helpers shared by the standalone sanitizer programs (sanitizer_driver.cpp and the mining
// cases linked into it): readable type names and an exact widening of every kernel scalar type.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <type_traits>

namespace sanitizer {

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, float>) return "float";
  if constexpr (std::is_same_v<T, double>) return "double";
  if constexpr (std::is_same_v<T, c10::Half>) return "half";
  if constexpr (std::is_same_v<T, c10::BFloat16>) return "bfloat16";
}

// Half and bfloat16 widen exactly through float; double stays double.
template <class T>
double as_double(T v) {
  if constexpr (std::is_same_v<T, double>) {
    return v;
  } else {
    return static_cast<double>(static_cast<float>(v));
  }
}

}  // namespace sanitizer
