// SPDX-License-Identifier: BSD-2-Clause
// The control socket's framing and request parsing (control/PROTOCOL.md).
#include "control/control_request.hpp"

#include <exception>
#include <optional>

namespace sluice {

namespace {

using nlohmann::json;

// Deepest nesting of arrays and objects in `text`, counted outside strings.
// Checked before parsing so that a line of 60,000 "[" never becomes a
// 60,000-deep document that a handler might walk recursively.
int nesting_depth(std::string_view text) {
  int depth = 0;
  int deepest = 0;
  bool in_string = false;
  bool escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > deepest) deepest = depth;
        break;
      case ']':
      case '}':
        --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

json answer(std::string_view line, const ControlHandler& handler) {
  if (nesting_depth(line) > kControlMaxJsonDepth) {
    return make_error_response("bad_request", "the request is nested deeper than " +
                                                  std::to_string(kControlMaxJsonDepth) + " levels");
  }
  json request;
  try {
    request = json::parse(line.begin(), line.end());
  } catch (const json::exception& e) {
    return make_error_response("bad_request", std::string("not JSON: ") + e.what());
  }
  if (!request.is_object()) {
    return make_error_response("bad_request",
                               std::string("expected a JSON object, got ") + request.type_name());
  }

  std::optional<json> id;
  if (auto it = request.find("id"); it != request.end()) id = *it;
  json response;
  const auto cmd = request.find("cmd");
  if (cmd == request.end()) {
    response = make_error_response("bad_request", "cmd: missing; expected the command's name");
  } else if (!cmd->is_string()) {
    response = make_error_response("bad_request",
                                   std::string("cmd: expected a string, got ") + cmd->type_name());
  } else {
    try {
      response = handler(request);
    } catch (const std::exception& e) {
      response = make_error_response("internal", std::string("the handler failed: ") + e.what());
    } catch (...) {
      response = make_error_response("internal", "the handler failed");
    }
    const auto ok = response.is_object() ? response.find("ok") : response.end();
    if (!response.is_object() || ok == response.end() || !ok->is_boolean()) {
      response = make_error_response("internal", "the handler returned a malformed response");
    }
  }
  if (id) response["id"] = std::move(*id);
  return response;
}

}  // namespace

json make_error_response(std::string_view code, std::string_view message) {
  return json{{"ok", false}, {"error", {{"code", code}, {"message", message}}}};
}

std::string response_line(const json& response) {
  std::string line = response.dump(-1, ' ', false, json::error_handler_t::replace);
  line.push_back('\n');
  return line;
}

json answer_request_line(std::string_view line, const ControlHandler& handler) {
  try {
    return answer(line, handler);
  } catch (const std::exception& e) {
    // Only allocation can fail here; still never let it out of the server.
    return make_error_response("internal", e.what());
  }
}

LineFramer::Next LineFramer::next(std::string* line) {
  for (;;) {
    const size_t from = scanned_ > start_ ? scanned_ : start_;
    const size_t nl = buf_.find('\n', from);
    if (nl == std::string::npos) {
      scanned_ = buf_.size();
      if (start_ == buf_.size()) {
        buf_.clear();
        start_ = scanned_ = 0;
      } else if (start_ > 0 && start_ >= buf_.size() / 2) {
        // Keep the unconsumed tail at the front so the buffer stays within
        // about twice the limit however long the stream runs.
        buf_.erase(0, start_);
        scanned_ -= start_;
        start_ = 0;
      }
      return buf_.size() - start_ > max_ ? Next::kTooLarge : Next::kNeedMore;
    }
    if (nl - start_ > max_) return Next::kTooLarge;
    size_t end = nl;
    if (end > start_ && buf_[end - 1] == '\r') --end;
    const size_t begin = start_;
    start_ = nl + 1;
    scanned_ = start_;
    if (end == begin) continue;  // empty lines are ignored
    line->assign(buf_, begin, end - begin);
    return Next::kLine;
  }
}

}  // namespace sluice
