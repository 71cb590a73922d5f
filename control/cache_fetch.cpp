// SPDX-License-Identifier: BSD-2-Clause
// fetch_value over a non-blocking socket and poll(2), one deadline for the
// whole exchange.
#include "control/cache_fetch.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "dataplane/core/memcached.hpp"

namespace sluice {
namespace {

using Clock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

Error sys(int err, const std::string& what) {
  return Error{-err, what + ": " + std::strerror(err)};
}

// Waits for `events` until the deadline: 0, or -ETIMEDOUT / -errno.
int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return -ETIMEDOUT;
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, static_cast<int>(left));
    if (n > 0) return 0;
    if (n < 0 && errno != EINTR) return -errno;
  }
}

}  // namespace

Result<std::optional<FetchedValue>> fetch_value(const IpAddress& addr, uint16_t port,
                                                std::string_view key,
                                                std::chrono::milliseconds timeout,
                                                size_t max_bytes) {
  if (!mc::valid_key(key)) return Error{-EINVAL, "not a memcached key"};
  const Clock::time_point deadline = Clock::now() + timeout;
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (addr.family == SLUICE_FAMILY_IPV4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    std::memcpy(&sin->sin_addr, addr.ip.bytes, 4);
    len = sizeof *sin;
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    std::memcpy(&sin6->sin6_addr, addr.ip.bytes, 16);
    len = sizeof *sin6;
  }
  const Fd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return sys(errno, "socket");
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    if (errno != EINPROGRESS) return sys(errno, "connect");
    if (int w = wait_for(fd.get(), POLLOUT, deadline); w != 0) return sys(-w, "connect");
    int err = 0;
    socklen_t elen = sizeof err;
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &elen);
    if (err != 0) return sys(err, "connect");
  }
  const std::string req = "gets " + std::string(key) + "\r\n";
  for (size_t sent = 0; sent < req.size();) {
    const ssize_t n = send(fd.get(), req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (int w = wait_for(fd.get(), POLLOUT, deadline); w != 0) return sys(-w, "send");
    } else {
      return sys(n < 0 ? errno : EPIPE, "send");
    }
  }
  // "VALUE <key> <flags> <bytes> <cas>\r\n" is at most this long.
  const size_t cap = max_bytes + key.size() + 64 + 7;
  std::vector<uint8_t> buf;
  buf.reserve(4096);
  for (;;) {
    const mc::ParsedValue r = mc::parse_value_response(buf, key);
    if (r.status == mc::ParsedValue::Status::kMiss) return std::optional<FetchedValue>{};
    if (r.status == mc::ParsedValue::Status::kHit) {
      FetchedValue v{r.value.flags, r.value.cas,
                     std::vector<uint8_t>(r.value.data.begin(), r.value.data.end())};
      return std::optional<FetchedValue>(std::move(v));
    }
    if (r.status == mc::ParsedValue::Status::kBad) return Error{-EPROTO, "unexpected answer"};
    if (buf.size() >= cap) return Error{-E2BIG, "value over " + std::to_string(max_bytes) + " bytes"};
    uint8_t chunk[4096];
    const ssize_t n = recv(fd.get(), chunk, std::min(sizeof chunk, cap - buf.size()), 0);
    if (n > 0) {
      buf.insert(buf.end(), chunk, chunk + n);
    } else if (n == 0) {
      return Error{-EPROTO, "connection closed before the answer ended"};
    } else if (errno == EAGAIN || errno == EINTR) {
      if (int w = wait_for(fd.get(), POLLIN, deadline); w != 0) return sys(-w, "recv");
    } else {
      return sys(errno, "recv");
    }
  }
}

}  // namespace sluice
