// SPDX-License-Identifier: BSD-2-Clause
// Status: the result of an xdp/ call that returns nothing but success, and
// the one way those calls turn an errno into a sentence.
#pragma once

#include <cstring>
#include <string>
#include <string_view>

#include "dataplane/core/result.hpp"

namespace sluice::xdp {

/// The value of a successful call that has nothing else to return.
struct Ok {};

/// Success, or an Error whose code is -errno.
using Status = Result<Ok>;

/// An Error for a failed system or libbpf call: code is -err (err > 0 is
/// an errno value, a negative one is taken as -errno), the message is
/// "<what>: <strerror> (errno N)".
inline Error sys_error(int err, std::string_view what) {
  const int e = err < 0 ? -err : err;
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(e);
  msg += " (errno ";
  msg += std::to_string(e);
  msg += ")";
  return Error{-e, std::move(msg)};
}

}  // namespace sluice::xdp
