// SPDX-License-Identifier: BSD-2-Clause
// A blocking client of the control socket (control/PROTOCOL.md): one
// connection, one request at a time, each with a deadline.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "dataplane/core/result.hpp"

namespace sluice {

class CtlClient {
 public:
  /// Connects to the socket at `path`. Errors: -errno of socket/connect
  /// (-ENOENT: no socket there; -ECONNREFUSED: nobody listens), the message
  /// names the path.
  [[nodiscard]] static Result<CtlClient> connect(const std::string& path,
                                                 std::chrono::milliseconds timeout);

  CtlClient(CtlClient&& other) noexcept;
  CtlClient& operator=(CtlClient&& other) noexcept;
  CtlClient(const CtlClient&) = delete;
  CtlClient& operator=(const CtlClient&) = delete;
  ~CtlClient();

  /// Sends `request` (an object; an "id" is added) and returns the daemon's
  /// response object, whether "ok" is true or false. Errors: the exchange
  /// itself failed (-ETIMEDOUT: no answer within the timeout; -ECONNRESET /
  /// -EPIPE: the daemon closed the connection; -EPROTO: the answer is not a
  /// response to this request).
  [[nodiscard]] Result<nlohmann::json> call(nlohmann::json request);

 private:
  CtlClient(int fd, std::chrono::milliseconds timeout) : fd_(fd), timeout_(timeout) {}
  [[nodiscard]] Result<std::string> read_line_until(std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  uint64_t next_id_ = 1;
  std::string buf_;  // bytes received after the last line returned
};

}  // namespace sluice
