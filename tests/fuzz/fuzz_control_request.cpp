// SPDX-License-Identifier: BSD-2-Clause
// libFuzzer target for the control socket's framing and request parsing:
// any byte stream, cut into reads anywhere, gives the same lines as in one
// read, and every line gives one well-formed response line.
#include <cstddef>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "control/control_request.hpp"

namespace {

using nlohmann::json;

// Small, so inputs of fuzzer size reach the too-large path.
constexpr size_t kMaxLine = 512;

// A handler that exercises every way an answer can come back.
json handler(const json& request) {
  const std::string cmd = request.at("cmd").get<std::string>();
  if (cmd == "throw") throw std::runtime_error("boom");
  if (cmd == "bad") return json::array();
  if (cmd == "err") return sluice::make_error_response("not_found", cmd);
  return json{{"ok", true}, {"result", request}};
}

void check_response(const json& r) {
  static const std::set<std::string> kCodes = {
      "bad_request", "unknown_command",   "not_found", "exists",  "invalid", "too_large",
      "busy",        "permission_denied", "failed",    "internal"};
  if (!r.is_object() || !r.contains("ok") || !r["ok"].is_boolean()) __builtin_trap();
  if (r["ok"] == false) {
    const json& e = r["error"];
    if (!e.is_object() || !e["code"].is_string() || !e["message"].is_string()) __builtin_trap();
    if (kCodes.count(e["code"].get<std::string>()) == 0) __builtin_trap();
  }
  const std::string wire = sluice::response_line(r);
  if (wire.empty() || wire.back() != '\n' || wire.find('\n') != wire.size() - 1) __builtin_trap();
  if (!json::accept(std::string_view(wire).substr(0, wire.size() - 1))) __builtin_trap();
}

// Lines of `data` fed in reads of the sizes given by `cuts`; stops at the
// first too-large line (the server closes the connection there).
std::vector<std::string> frame(std::string_view data, const uint8_t* cuts, size_t ncuts,
                               bool* too_large) {
  sluice::LineFramer f(kMaxLine);
  std::vector<std::string> lines;
  *too_large = false;
  size_t off = 0;
  size_t i = 0;
  while (off < data.size()) {
    const size_t n = ncuts == 0 ? data.size() : 1 + cuts[i++ % ncuts] % 64;
    f.append(data.substr(off, n));
    off += n < data.size() - off ? n : data.size() - off;
    std::string line;
    for (;;) {
      const auto next = f.next(&line);
      if (next == sluice::LineFramer::Next::kNeedMore) break;
      if (next == sluice::LineFramer::Next::kTooLarge) {
        *too_large = true;
        return lines;
      }
      if (line.empty() || line.size() > kMaxLine || line.find('\n') != std::string::npos) {
        __builtin_trap();
      }
      lines.push_back(line);
    }
  }
  return lines;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first bytes choose where reads are cut; the rest is the stream.
  const size_t ncuts = size == 0 ? 0 : data[0] % 8;
  if (size < 1 + ncuts) return 0;
  const uint8_t* cuts = data + 1;
  const std::string_view stream(reinterpret_cast<const char*>(data + 1 + ncuts), size - 1 - ncuts);

  bool whole_too_large = false;
  bool cut_too_large = false;
  const auto whole = frame(stream, nullptr, 0, &whole_too_large);
  const auto cut = frame(stream, cuts, ncuts, &cut_too_large);
  // A line over the limit is refused at the same place however the
  // stream was cut: while it is still partial, or once complete.
  if (whole_too_large != cut_too_large || whole != cut) __builtin_trap();

  for (const auto& line : cut) check_response(sluice::answer_request_line(line, handler));
  return 0;
}
