// SPDX-License-Identifier: BSD-2-Clause
// The BIRD control-socket client: one `show protocols` exchange, the
// parsing of its table, and the watcher that repeats it off the event loop.
#include "control/bird_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::control {
namespace {

bool is_code(std::string_view line) {
  if (line.size() < 5 || (line[4] != ' ' && line[4] != '-')) return false;
  for (size_t i = 0; i < 4; ++i)
    if (line[i] < '0' || line[i] > '9') return false;
  return true;
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    const size_t start = i;
    while (i < s.size() && s[i] != ' ') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// "2024-05-01" (BIRD prints a date, then the time, for older states).
bool is_date(std::string_view w) {
  return w.size() == 10 && w[4] == '-' && w[7] == '-';
}

// A reply is complete at its last line: a code line ending with ' ' whose
// code is not a table row or header (0xxx done, 8xxx/9xxx errors).
bool complete(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) return false;
    const std::string_view line = text.substr(pos, nl - pos);
    if (is_code(line) && line[4] == ' ' && (line[0] == '0' || line[0] >= '8') &&
        line.substr(0, 4) != "0001")
      return true;
    pos = nl + 1;
  }
  return false;
}

}  // namespace

Result<std::vector<BirdProtocol>> parse_bird_protocols(std::string_view reply) {
  std::vector<BirdProtocol> out;
  bool header = false;
  std::string_view code;
  size_t pos = 0;
  while (pos < reply.size()) {
    size_t nl = reply.find('\n', pos);
    if (nl == std::string_view::npos) nl = reply.size();
    std::string_view line = reply.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view text;
    if (is_code(line)) {
      code = line.substr(0, 4);
      text = line.substr(5);
    } else if (!line.empty() && line[0] == ' ') {
      text = line.substr(1);  // continues the last code
    } else {
      continue;
    }
    if (code[0] == '8' || code[0] == '9')
      return Error{-EPROTO, "BIRD: " + std::string(text)};
    if (code == "2002") header = true;
    if (code != "1002") continue;
    const std::vector<std::string_view> w = words(text);
    if (w.size() < 4) continue;
    BirdProtocol p{std::string(w[0]), std::string(w[1]), std::string(w[3]), {}, {}};
    // w[2] is the table ("---" for BGP in BIRD 2: its channels have tables).
    size_t i = 4;
    if (i < w.size()) {
      p.since = std::string(w[i++]);
      if (is_date(p.since) && i < w.size()) p.since.append(" ").append(w[i++]);
    }
    for (; i < w.size(); ++i) {
      if (!p.info.empty()) p.info.push_back(' ');
      p.info.append(w[i]);
    }
    out.push_back(std::move(p));
  }
  if (!header) return Error{-EPROTO, "BIRD's reply has no protocol table"};
  return out;
}

Result<std::vector<BirdProtocol>> query_bird_protocols(const std::string& path,
                                                       std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path)
    return Error{-EINVAL, "BIRD socket path \"" + path + "\" is empty or too long"};
  std::memcpy(sa.sun_path, path.c_str(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Error{-errno, std::string("socket: ") + std::strerror(errno)};
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 && errno != EINPROGRESS)
    return Error{-errno, path + ": " + std::strerror(errno)};

  // Waits for `events` until the deadline; false on timeout or error.
  const auto wait = [&](short events) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, events, 0};
      const int n = ::poll(&p, 1, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      return n > 0;
    }
  };
  std::string got;
  // Reads until `done(got)`; the greeting ("0001 BIRD 2.0.12 ready.") first.
  const auto read_until = [&](auto done) -> Result<bool> {
    char buf[4096];
    while (!done(got)) {
      if (!wait(POLLIN)) return Error{-ETIMEDOUT, path + ": BIRD did not answer in time"};
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n < 0) return Error{-errno, path + ": " + std::strerror(errno)};
      if (n == 0) return Error{-EPROTO, path + ": BIRD closed the connection"};
      got.append(buf, static_cast<size_t>(n));
    }
    return true;
  };
  auto greeted = read_until([](const std::string& s) { return s.find('\n') != std::string::npos; });
  if (!greeted.ok()) return greeted.error();
  if (got.compare(0, 5, "0001 ") != 0) return Error{-EPROTO, path + ": not a BIRD socket"};
  got.clear();
  const std::string_view cmd = "show protocols\n";
  size_t sent = 0;
  while (sent < cmd.size()) {
    if (!wait(POLLOUT)) return Error{-ETIMEDOUT, path + ": BIRD did not take the request"};
    const ssize_t n = ::send(fd, cmd.data() + sent, cmd.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return Error{-errno, path + ": " + std::strerror(errno)};
    sent += static_cast<size_t>(n);
  }
  auto answered = read_until([](const std::string& s) { return complete(s); });
  if (!answered.ok()) return answered.error();
  return parse_bird_protocols(got);
}

BirdWatcher::BirdWatcher(std::string path, std::chrono::milliseconds timeout,
                         std::chrono::milliseconds period)
    : path_(std::move(path)), timeout_(timeout), period_(period), worker_([this] { work(); }) {}

BirdWatcher::~BirdWatcher() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

BirdReading BirdWatcher::reading() const {
  std::lock_guard lock(mu_);
  return last_;
}

void BirdWatcher::work() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    lock.unlock();
    auto r = query_bird_protocols(path_, timeout_);
    BirdReading got;
    got.at = std::chrono::steady_clock::now();
    if (r.ok())
      got.protocols = std::move(r.value());
    else
      got.error = r.error().message;
    lock.lock();
    last_ = std::move(got);
    wake_.wait_for(lock, period_, [this] { return stop_; });
  }
}

}  // namespace sluice::control
