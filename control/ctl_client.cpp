// SPDX-License-Identifier: BSD-2-Clause
// A blocking client of the control socket: connect, send a line, read a
// line, each bounded by a deadline (poll(2)).
#include "control/ctl_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "control/control_request.hpp"

namespace sluice {

namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline`, at least 0, as poll(2) takes them.
int ms_left(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(left);
}

// Waits until fd is ready for `events`; -ETIMEDOUT at the deadline.
int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, ms_left(deadline));
    if (rc > 0) return 0;
    if (rc == 0) return -ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace

Result<CtlClient> CtlClient::connect(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Error{-ENAMETOOLONG, path + ": not a usable socket path"};
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{-errno, std::string("socket: ") + std::strerror(errno)};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // A Unix socket connect either succeeds at once or fails at once (a full
  // backlog blocks, which the daemon's accept loop drains).
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    ::close(fd);
    return Error{-err, "cannot connect to " + path + ": " + std::strerror(err)};
  }
  return CtlClient(fd, timeout);
}

CtlClient::CtlClient(CtlClient&& other) noexcept
    : fd_(other.fd_),
      timeout_(other.timeout_),
      next_id_(other.next_id_),
      buf_(std::move(other.buf_)) {
  other.fd_ = -1;
}

CtlClient& CtlClient::operator=(CtlClient&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    timeout_ = other.timeout_;
    next_id_ = other.next_id_;
    buf_ = std::move(other.buf_);
    other.fd_ = -1;
  }
  return *this;
}

CtlClient::~CtlClient() {
  if (fd_ >= 0) ::close(fd_);
}

Result<nlohmann::json> CtlClient::call(nlohmann::json request) {
  const uint64_t id = next_id_++;
  request["id"] = id;
  const std::string line = response_line(request);
  const Clock::time_point deadline = Clock::now() + timeout_;
  size_t off = 0;
  while (off < line.size()) {
    if (const int rc = wait_for(fd_, POLLOUT, deadline); rc != 0) {
      return Error{rc, "sending the request: " + std::string(std::strerror(-rc))};
    }
    const ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      const int err = errno;
      // A daemon that turns us away (busy, permission_denied) answers and
      // closes before reading: its answer says more than EPIPE.
      if (auto early = read_line_until(deadline); early) {
        auto response = nlohmann::json::parse(early.value(), nullptr, false);
        if (response.is_object() && response.contains("ok")) return response;
      }
      return Error{-err, "sending the request: " + std::string(std::strerror(err))};
    }
    off += static_cast<size_t>(n);
  }
  for (;;) {
    auto got = read_line_until(deadline);
    if (!got) return got.error();
    nlohmann::json response = nlohmann::json::parse(got.value(), nullptr, false);
    if (!response.is_object() || !response.contains("ok") || !response["ok"].is_boolean()) {
      return Error{-EPROTO, "the daemon's answer is not a response: " + got.value()};
    }
    // An answer without our id is one the daemon could not tie to a request
    // (e.g. `busy` or `permission_denied` sent on accept): it is still ours.
    if (!response.contains("id") || response["id"] == id) return response;
  }
}

Result<std::string> CtlClient::read_line_until(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    if (const int rc = wait_for(fd_, POLLIN, deadline); rc != 0) {
      return Error{
          rc, rc == -ETIMEDOUT
                  ? "no answer from the daemon within " + std::to_string(timeout_.count()) + " ms"
                  : std::string("waiting for the answer: ") + std::strerror(-rc)};
    }
    char tmp[16384];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n == 0) return Error{-ECONNRESET, "the daemon closed the connection without an answer"};
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return Error{-errno, std::string("reading the answer: ") + std::strerror(errno)};
    }
    buf_.append(tmp, static_cast<size_t>(n));
  }
}

}  // namespace sluice
