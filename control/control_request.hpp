// SPDX-License-Identifier: BSD-2-Clause
// The control socket's framing and request parsing, free of any I/O: bytes
// become lines (bounded), a line becomes a response through a handler
// (control/PROTOCOL.md). The socket server and the fuzzer share it.
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace sluice {

/// Answers one parsed request. It gets an object whose "cmd" is a string
/// and returns the response WITHOUT "id": {"ok": true, "result": {...}} or
/// {"ok": false, "error": {"code", "message"}} (make_error_response()).
/// It may throw: that becomes an `internal` error.
using ControlHandler = std::function<nlohmann::json(const nlohmann::json& request)>;

/// Limits of control/PROTOCOL.md.
inline constexpr size_t kControlMaxLineBytes = 64 * 1024;
inline constexpr int kControlMaxJsonDepth = 64;

/// {"ok": false, "error": {"code": code, "message": message}}.
[[nodiscard]] nlohmann::json make_error_response(std::string_view code, std::string_view message);

/// Serialises a response as one line ending in "\n". Invalid UTF-8 in
/// strings is replaced (U+FFFD) instead of throwing.
[[nodiscard]] std::string response_line(const nlohmann::json& response);

/// Turns one request line (without its "\n") into the response to send:
/// parses it (bad_request when it is not JSON, not an object, nested deeper
/// than kControlMaxJsonDepth, or has no string "cmd"), calls `handler`, and
/// echoes the request's "id" when it has one. A handler that throws or
/// returns something that is not a response object gives `internal`.
/// Never throws.
[[nodiscard]] nlohmann::json answer_request_line(std::string_view line,
                                                 const ControlHandler& handler);

/// Splits a byte stream into lines of at most max_line_bytes (excluding the
/// "\n"; a "\r" before it is dropped).
class LineFramer {
 public:
  explicit LineFramer(size_t max_line_bytes = kControlMaxLineBytes) : max_(max_line_bytes) {}

  enum class Next { kLine, kNeedMore, kTooLarge };

  /// Adds received bytes.
  void append(std::string_view bytes) { buf_.append(bytes); }

  /// Takes the next complete line into *line (kLine); kNeedMore when no
  /// complete line is buffered; kTooLarge when the line being received (or
  /// the next complete one) is longer than the limit: the stream is then
  /// unusable (the server closes it).
  [[nodiscard]] Next next(std::string* line);

  /// True when part of a line is buffered (bytes after the last "\n").
  [[nodiscard]] bool partial() const { return start_ < buf_.size(); }

 private:
  size_t max_;
  std::string buf_;
  size_t start_ = 0;    // offset in buf_ of the first byte not yet taken
  size_t scanned_ = 0;  // buf_[start_, scanned_) holds no "\n"
};

}  // namespace sluice
