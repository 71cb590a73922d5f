// SPDX-License-Identifier: BSD-2-Clause
// The control socket server: accepting, peer credentials, per-connection
// framing, deadlines and writes (control/PROTOCOL.md).
#include "control/socket_server.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <asio/local/stream_protocol.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <cstring>
#include <unordered_set>
#include <vector>

namespace sluice {

namespace {

using Socket = asio::local::stream_protocol::socket;

std::string errno_text(int err) { return std::strerror(err); }

Error path_error(const std::string& what, const std::string& path, int err) {
  return Error{-err, "control socket " + path + ": " + what + ": " + errno_text(err)};
}

// The gid of a group name, or nullopt when there is no such group.
std::optional<gid_t> lookup_group(const std::string& name) {
  std::vector<char> buf(4096);
  for (;;) {
    group gr{};
    group* found = nullptr;
    const int rc = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 || found == nullptr) return std::nullopt;
    return found->gr_gid;
  }
}

// Whether user `uid` (primary group `gid`) lists `want` among its groups
// in the user database.
bool user_in_group(uid_t uid, gid_t gid, gid_t want) {
  std::vector<char> buf(4096);
  passwd pw{};
  passwd* found = nullptr;
  for (;;) {
    const int rc = getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0 || found == nullptr) return false;
    break;
  }
  std::vector<gid_t> groups(32);
  for (int attempt = 0; attempt < 8; ++attempt) {
    int n = static_cast<int>(groups.size());
    if (getgrouplist(pw.pw_name, gid, groups.data(), &n) >= 0) {
      for (int i = 0; i < n; ++i) {
        if (groups[static_cast<size_t>(i)] == want) return true;
      }
      return false;
    }
    // n now holds the number needed.
    groups.resize(static_cast<size_t>(n) > groups.size() ? static_cast<size_t>(n)
                                                         : groups.size() * 2);
  }
  return false;
}

// Whether a process listens on the Unix socket at `path` (a connect
// succeeds). A stale file left by a crashed daemon refuses the connection.
bool someone_listens(const std::string& path, int* err) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    return false;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  *err = rc == 0 ? 0 : errno;
  ::close(fd);
  return rc == 0;
}

}  // namespace

bool control_peer_allowed(uid_t uid, gid_t gid, std::optional<gid_t> allowed_gid) {
  if (uid == 0 || uid == ::geteuid()) return true;
  if (!allowed_gid) return false;
  return gid == *allowed_gid || user_in_group(uid, gid, *allowed_gid);
}

class Connection;

struct SocketServer::State {
  State(asio::io_context& io, SocketServerOptions opts, ControlHandler h)
      : options(std::move(opts)), handler(std::move(h)), acceptor(io), retry(io) {}

  SocketServerOptions options;
  ControlHandler handler;
  std::optional<gid_t> allowed_gid;
  asio::local::stream_protocol::acceptor acceptor;
  asio::steady_timer retry;  // paces accept() after an error such as EMFILE
  std::unordered_set<Connection*> connections;
  bool closed = false;
  dev_t file_dev = 0;  // identity of the socket file we made, so only it is removed
  ino_t file_ino = 0;

  void accept(const std::shared_ptr<State>& self);
  // Closes the client idle the longest other than `except`; false when
  // every other client is in the middle of a request.
  bool evict_longest_idle(const Connection* except);
  void shutdown();
};

// One client. Owned by the shared_ptrs its pending operations hold; reads
// are paused while a response is being written, so a client that stops
// reading only ever holds one response in memory. One deadline at a time
// bounds what it is doing: completing a line, taking a response, or
// sending its next request at all.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<SocketServer::State> state, Socket socket)
      : state_(std::move(state)),
        socket_(std::move(socket)),
        deadline_(socket_.get_executor()),
        framer_(state_->options.max_line_bytes),
        last_active_(std::chrono::steady_clock::now()) {
    state_->connections.insert(this);
  }
  ~Connection() { state_->connections.erase(this); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Serves requests until the client leaves or breaks a limit.
  void start() {
    served_ = true;
    serve();
  }

  // Waiting for a request with nothing half done: the only state in which
  // a client may be closed to make room.
  [[nodiscard]] bool idle() const {
    return served_ && socket_.is_open() && !writing_ && !framer_.partial();
  }
  // When it last connected or was answered.
  [[nodiscard]] std::chrono::steady_clock::time_point last_active() const { return last_active_; }

  // Sends one error and closes (busy, permission_denied).
  void reject(std::string_view code, std::string_view message) {
    send(make_error_response(code, message), /*then_close=*/true);
  }

  void close() {
    disarm();
    asio::error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  // Answers every complete line buffered, one write at a time, then reads.
  void serve() {
    if (!socket_.is_open()) return;
    std::string line;
    switch (framer_.next(&line)) {
      case LineFramer::Next::kLine:
        disarm();
        send(answer_request_line(line, state_->handler), /*then_close=*/false);
        return;
      case LineFramer::Next::kTooLarge:
        send(make_error_response("too_large", "request line longer than " +
                                                  std::to_string(state_->options.max_line_bytes) +
                                                  " bytes"),
             /*then_close=*/true, /*drain=*/true);
        return;
      case LineFramer::Next::kNeedMore:
        break;
    }
    // The line deadline runs from a request's first byte, the idle one
    // from the last answer: neither is pushed back by further bytes.
    const Deadline want = framer_.partial() ? Deadline::kLine : Deadline::kIdle;
    if (armed_ != want) arm(want);
    socket_.async_read_some(asio::buffer(rbuf_),
                            [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                              if (ec) {
                                self->close();
                                return;
                              }
                              self->framer_.append(std::string_view(self->rbuf_.data(), n));
                              self->serve();
                            });
  }

  // With `drain`, the close waits for the client to finish sending (see
  // drain()).
  void send(const nlohmann::json& response, bool then_close, bool drain = false) {
    out_ = response_line(response);
    writing_ = true;
    arm(Deadline::kWrite);
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this(), then_close, drain](const asio::error_code& ec, size_t) {
          self->writing_ = false;
          self->last_active_ = std::chrono::steady_clock::now();
          self->disarm();
          if (!ec && drain) {
            self->drain();
            return;
          }
          if (ec || then_close) {
            self->close();
            return;
          }
          self->serve();
        });
  }

  // The answer is sent; the client may still be sending the rest of its
  // request. Closing now, with its bytes unread, would reset the
  // connection: the client would get EPIPE on its write or ECONNRESET
  // before reading the answer. So: EOF to the client (shutdown of our
  // side), then its bytes are read and dropped until it closes, or for
  // line_timeout at most, then the connection is closed.
  void drain() {
    asio::error_code ignored;
    socket_.shutdown(Socket::shutdown_send, ignored);
    arm(Deadline::kDrain);
    drain_more();
  }

  void drain_more() {
    socket_.async_read_some(asio::buffer(rbuf_),
                            [self = shared_from_this()](const asio::error_code& ec, size_t) {
                              if (ec) {
                                self->close();
                                return;
                              }
                              self->drain_more();
                            });
  }

  // What the armed deadline limits: a partial line must complete and a
  // response must be taken within line_timeout; a client must send its
  // next request within idle_timeout.
  enum class Deadline : uint8_t { kNone, kLine, kWrite, kIdle, kDrain };

  void arm(Deadline what) {
    armed_ = what;
    const uint64_t generation = ++generation_;
    deadline_.expires_after(what == Deadline::kIdle ? state_->options.idle_timeout
                                                    : state_->options.line_timeout);
    deadline_.async_wait([self = shared_from_this(), generation, what](const asio::error_code& ec) {
      if (ec || generation != self->generation_ || !self->socket_.is_open()) return;
      self->armed_ = Deadline::kNone;
      switch (what) {
        case Deadline::kIdle:
          // Nothing is owed to a client between requests: it is closed
          // without a message.
          self->close();
          return;
        case Deadline::kWrite:
          self->close();  // the client does not read its answers
          return;
        case Deadline::kDrain:
          self->close();  // it had its answer, and line_timeout to stop sending
          return;
        case Deadline::kLine:
        case Deadline::kNone:
          break;
      }
      self->send(make_error_response(
                     "bad_request", "incomplete request line: no newline within " +
                                        std::to_string(self->state_->options.line_timeout.count()) +
                                        " ms"),
                 /*then_close=*/true);
    });
  }

  void disarm() {
    if (armed_ == Deadline::kNone) return;
    armed_ = Deadline::kNone;
    ++generation_;
    deadline_.cancel();
  }

  std::shared_ptr<SocketServer::State> state_;
  Socket socket_;
  asio::steady_timer deadline_;
  LineFramer framer_;
  std::array<char, 4096> rbuf_{};
  std::string out_;
  std::chrono::steady_clock::time_point last_active_;
  bool served_ = false;  // start()ed: not a client being turned away
  bool writing_ = false;
  Deadline armed_ = Deadline::kNone;
  uint64_t generation_ = 0;  // bumped on every arm/disarm; a stale expiry is ignored
};

void SocketServer::State::accept(const std::shared_ptr<State>& self) {
  acceptor.async_accept([self](const asio::error_code& ec, Socket socket) {
    if (self->closed) return;
    if (ec) {
      // Out of descriptors and the like: try again shortly rather than spin.
      self->retry.expires_after(std::chrono::milliseconds(100));
      self->retry.async_wait([self](const asio::error_code& wait_ec) {
        if (!wait_ec && !self->closed) self->accept(self);
      });
      return;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    const bool have_cred =
        ::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
    auto connection = std::make_shared<Connection>(self, std::move(socket));
    // Credentials first: a peer that may not use the socket must not be
    // able to push an operator's client out.
    if (!have_cred || !control_peer_allowed(cred.uid, cred.gid, self->allowed_gid)) {
      connection->reject("permission_denied",
                         have_cred ? "uid " + std::to_string(cred.uid) +
                                         " may not use this socket (root, the daemon's user "
                                         "or the configured group only)"
                                   : "cannot read the peer's credentials");
    } else if (self->connections.size() > self->options.max_clients &&
               !self->evict_longest_idle(connection.get())) {
      connection->reject("busy", "too many clients (at most " +
                                     std::to_string(self->options.max_clients) +
                                     "), all in the middle of a request");
    } else {
      connection->start();
    }
    self->accept(self);
  });
}

bool SocketServer::State::evict_longest_idle(const Connection* except) {
  Connection* oldest = nullptr;
  for (Connection* c : connections) {
    if (c == except || !c->idle()) continue;
    if (oldest == nullptr || c->last_active() < oldest->last_active()) oldest = c;
  }
  if (oldest == nullptr) return false;
  oldest->close();
  return true;
}

void SocketServer::State::shutdown() {
  if (closed) return;
  closed = true;
  asio::error_code ignored;
  acceptor.close(ignored);
  retry.cancel();
  // close() may drop the last reference of a connection only later (its
  // handlers hold it), so the set is not changed while we walk a copy.
  const std::vector<Connection*> open(connections.begin(), connections.end());
  for (Connection* c : open) c->close();
  struct stat st {};
  if (::lstat(options.path.c_str(), &st) == 0 && st.st_dev == file_dev && st.st_ino == file_ino) {
    ::unlink(options.path.c_str());
  }
}

Result<std::unique_ptr<SocketServer>> SocketServer::open(asio::io_context& io,
                                                         SocketServerOptions options,
                                                         ControlHandler handler) {
  const std::string path = options.path;
  if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Error{-ENAMETOOLONG, "control socket path '" + path + "': empty or longer than " +
                                    std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes"};
  }
  auto state = std::make_shared<State>(io, std::move(options), std::move(handler));
  if (!state->options.group.empty()) {
    state->allowed_gid = lookup_group(state->options.group);
    if (!state->allowed_gid) {
      return Error{-ENOENT,
                   "control socket " + path + ": group '" + state->options.group + "' not found"};
    }
  }

  if (const size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0) {
    const std::string dir = path.substr(0, slash);
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
      return path_error("cannot create directory " + dir, path, errno);
    }
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error{-EEXIST, "control socket " + path + ": exists and is not a socket"};
    }
    int err = 0;
    if (someone_listens(path, &err)) {
      return Error{-EADDRINUSE, "control socket " + path +
                                    ": another process listens on it (is sluice "
                                    "already running?)"};
    }
    if (err != ECONNREFUSED) return path_error("cannot probe the existing socket", path, err);
    if (::unlink(path.c_str()) != 0)
      return path_error("cannot remove the stale socket", path, errno);
  }

  asio::error_code ec;
  auto& acceptor = state->acceptor;
  acceptor.open(asio::local::stream_protocol(), ec);
  if (ec) return path_error("socket", path, ec.value());
  acceptor.bind(asio::local::stream_protocol::endpoint(path), ec);
  if (ec) return path_error("bind", path, ec.value());
  // The mode and group are set between bind and listen: until listen no
  // one can connect, so there is no moment with looser permissions.
  auto fail = [&](const std::string& what, int err) {
    ::unlink(path.c_str());
    return path_error(what, path, err);
  };
  if (::chmod(path.c_str(), static_cast<mode_t>(state->options.mode & 07777)) != 0) {
    return fail("chmod", errno);
  }
  if (state->allowed_gid &&
      ::chown(path.c_str(), static_cast<uid_t>(-1), *state->allowed_gid) != 0) {
    return fail("chown", errno);
  }
  if (::lstat(path.c_str(), &st) != 0) return fail("stat", errno);
  state->file_dev = st.st_dev;
  state->file_ino = st.st_ino;
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen", ec.value());
  state->accept(state);
  return std::unique_ptr<SocketServer>(new SocketServer(std::move(state)));
}

SocketServer::~SocketServer() { state_->shutdown(); }

size_t SocketServer::client_count() const { return state_->connections.size(); }

const std::string& SocketServer::path() const { return state_->options.path; }

}  // namespace sluice
