// SPDX-License-Identifier: BSD-2-Clause
// Result<T>: a value or an error, for calls outside the packet path (C++20
// has no std::expected; this is the small subset sluice needs).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace sluice {

/// An error: a machine-readable code (-errno style, e.g. -EINVAL) and a
/// sentence for a person.
struct Error {
  int code;
  std::string message;
};

/// Holds either a T or an Error. Check ok() before value().
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit on purpose
  Result(Error error) : v_(std::move(error)) {}  // NOLINT: implicit on purpose

  [[nodiscard]] bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  [[nodiscard]] T& value() & { return std::get<0>(v_); }
  [[nodiscard]] const T& value() const& { return std::get<0>(v_); }
  [[nodiscard]] T&& value() && { return std::get<0>(std::move(v_)); }
  [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

}  // namespace sluice
