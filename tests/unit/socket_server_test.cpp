// SPDX-License-Identifier: BSD-2-Clause
// The control socket against a fake handler: framing, ids, errors, limits
// (line size, partial-line deadline, client count), the socket file's
// life cycle and peer-credential checks.
#include "control/socket_server.hpp"

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sluice {
namespace {

using nlohmann::json;

// --- LineFramer --------------------------------------------------------------

struct FramerCase {
  const char* name;
  std::vector<std::string> chunks;  // fed in this order
  size_t max;
  std::vector<std::string> lines;  // every line taken before kNeedMore/kTooLarge
  bool too_large;
  bool partial;  // a partial line remains (when not too large)
};

TEST(LineFramer, Table) {
  const std::vector<FramerCase> cases = {
      {"one line", {"abc\n"}, 16, {"abc"}, false, false},
      {"two lines one chunk", {"a\nb\n"}, 16, {"a", "b"}, false, false},
      {"split across chunks", {"ab", "c\nd"}, 16, {"abc"}, false, true},
      {"crlf", {"abc\r\n"}, 16, {"abc"}, false, false},
      {"empty lines skipped", {"\n\r\n\nx\n"}, 16, {"x"}, false, false},
      {"exactly the limit", {"abcd\n"}, 4, {"abcd"}, false, false},
      {"complete line over the limit", {"abcde\n"}, 4, {}, true, false},
      {"partial over the limit", {"abc", "de"}, 4, {}, true, false},
      {"good line then too long", {"ab\nabcdefgh"}, 4, {"ab"}, true, false},
      {"partial at the limit is fine", {"abcd"}, 4, {}, false, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    LineFramer f(c.max);
    std::vector<std::string> got;
    bool too_large = false;
    for (const auto& chunk : c.chunks) {
      f.append(chunk);
      std::string line;
      LineFramer::Next n;
      while ((n = f.next(&line)) == LineFramer::Next::kLine) got.push_back(line);
      if (n == LineFramer::Next::kTooLarge) {
        too_large = true;
        break;
      }
    }
    EXPECT_EQ(got, c.lines);
    EXPECT_EQ(too_large, c.too_large);
    if (!c.too_large) {
      EXPECT_EQ(f.partial(), c.partial);
    }
  }
}

TEST(LineFramer, ByteByByteOverALongStreamStaysBounded) {
  LineFramer f(64);
  const std::string msg = "{\"cmd\":\"status\"}\n";
  size_t lines = 0;
  for (int i = 0; i < 10000; ++i) {
    for (const char c : msg) {
      f.append(std::string_view(&c, 1));
      std::string line;
      while (f.next(&line) == LineFramer::Next::kLine) {
        EXPECT_EQ(line, "{\"cmd\":\"status\"}");
        ++lines;
      }
    }
  }
  EXPECT_EQ(lines, 10000u);
  EXPECT_FALSE(f.partial());
}

// --- answer_request_line -----------------------------------------------------

json fake_handler(const json& request) {
  const std::string cmd = request.at("cmd").get<std::string>();
  if (cmd == "echo") return json{{"ok", true}, {"result", request}};
  if (cmd == "missing") return make_error_response("not_found", "no such VIP");
  if (cmd == "throw") throw std::runtime_error("boom");
  if (cmd == "malformed") return json(42);
  return make_error_response("unknown_command", "unknown command '" + cmd + "'");
}

TEST(AnswerRequestLine, Table) {
  struct Case {
    std::string line;
    std::string code;  // "" = ok
    bool has_id;
    json id;
  };
  const std::vector<Case> cases = {
      {R"({"cmd":"echo","id":1})", "", true, 1},
      {R"({"cmd":"echo","id":"abc"})", "", true, "abc"},
      {R"({"cmd":"echo","id":{"a":[1,2]}})", "", true, json{{"a", {1, 2}}}},
      {R"({"cmd":"echo","id":null})", "", true, nullptr},
      {R"({"cmd":"echo"})", "", false, nullptr},
      {R"({"cmd":"missing","id":2})", "not_found", true, 2},
      {R"({"cmd":"nope","id":3})", "unknown_command", true, 3},
      {R"({"cmd":"throw","id":4})", "internal", true, 4},
      {R"({"cmd":"malformed","id":5})", "internal", true, 5},
      {R"({"id":6})", "bad_request", true, 6},
      {R"({"cmd":7,"id":7})", "bad_request", true, 7},
      {"hello", "bad_request", false, nullptr},
      {"[1,2]", "bad_request", false, nullptr},
      {"\"cmd\"", "bad_request", false, nullptr},
      {R"({"cmd":"echo"} {"cmd":"echo"})", "bad_request", false, nullptr},
      {"{\"cmd\":\"echo\",\"x\":\"\xff\"}", "bad_request", false, nullptr},
      {std::string(65, '[') + std::string(65, ']'), "bad_request", false, nullptr},
      {"{\"cmd\":\"echo\",\"x\":" + std::string(60, '[') + std::string(60, ']') + "}", "", false,
       nullptr},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.line);
    const json r = answer_request_line(c.line, fake_handler);
    ASSERT_TRUE(r.is_object());
    // Whatever the input, the response serialises to one valid JSON line.
    const std::string wire = response_line(r);
    ASSERT_EQ(wire.back(), '\n');
    EXPECT_EQ(wire.find('\n'), wire.size() - 1);
    EXPECT_TRUE(json::accept(wire));
    if (c.code.empty()) {
      EXPECT_EQ(r.at("ok"), true);
    } else {
      EXPECT_EQ(r.at("ok"), false);
      EXPECT_EQ(r.at("error").at("code"), c.code);
      EXPECT_TRUE(r.at("error").at("message").is_string());
    }
    EXPECT_EQ(r.contains("id"), c.has_id);
    if (c.has_id) {
      EXPECT_EQ(r.at("id"), c.id);
    }
  }
}

TEST(AnswerRequestLine, MessagesNameTheField) {
  EXPECT_EQ(answer_request_line(R"({"id":1})", fake_handler)["error"]["message"],
            "cmd: missing; expected the command's name");
  EXPECT_EQ(answer_request_line(R"({"cmd":[]})", fake_handler)["error"]["message"],
            "cmd: expected a string, got array");
  EXPECT_EQ(answer_request_line("[]", fake_handler)["error"]["message"],
            "expected a JSON object, got array");
}

// --- the server over a real socket -------------------------------------------

bool require_privileges() {
  const char* v = std::getenv("SLUICE_REQUIRE_BPF");
  return v != nullptr && std::string(v) == "1";
}

// A blocking client with a generous receive timeout, so a server bug fails
// the test instead of hanging it.
class Client {
 public:
  explicit Client(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  // Sends everything it can; a peer that closed early is not an error here.
  // True when everything was sent.
  bool send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // True on a clean EOF from the server: nothing left to read, no reset.
  bool clean_eof() {
    char tmp[4096];
    return ::recv(fd_, tmp, sizeof tmp, 0) == 0;
  }

  // The next line without its "\n"; "" on EOF, error or timeout.
  std::string line() {
    for (;;) {
      if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
        std::string l = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return l;
      }
      char tmp[4096];
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return "";
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

  json response() {
    const std::string l = line();
    return l.empty() ? json() : json::parse(l);
  }

  // True when the server closed the connection (EOF, or a reset because it
  // closed with our unread bytes) rather than the read timing out.
  bool closed_by_server() {
    char tmp[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

class SocketServerTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sluice_sock_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // Other users (the credential tests' child) must reach the socket.
    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
    options_.path = dir_ + "/ctl.sock";
  }

  void TearDown() override {
    stop();
    ::unlink(options_.path.c_str());
    ::rmdir(dir_.c_str());
  }

  void start() {
    auto opened = SocketServer::open(io_, options_, fake_handler);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    server_ = std::move(opened.value());
    thread_ = std::thread([this] { io_.run(); });
  }

  void stop() {
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }

  std::string dir_;
  SocketServerOptions options_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::unique_ptr<SocketServer> server_;
  std::thread thread_;
};

TEST_F(SocketServerTest, AnswersAndEchoesIds) {
  start();
  Client c(options_.path);
  ASSERT_TRUE(c.connected());
  c.send("{\"cmd\":\"echo\",\"id\":\"first\",\"x\":1}\n");
  const json r = c.response();
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["id"], "first");
  EXPECT_EQ(r["result"]["x"], 1);
  c.send("{\"cmd\":\"missing\",\"id\":2}\n");
  const json e = c.response();
  EXPECT_EQ(e["ok"], false);
  EXPECT_EQ(e["id"], 2);
  EXPECT_EQ(e["error"]["code"], "not_found");
}

TEST_F(SocketServerTest, ManyPipelinedRequestsAnsweredInOrder) {
  start();
  Client c(options_.path);
  ASSERT_TRUE(c.connected());
  std::string batch;
  constexpr int kRequests = 500;
  for (int i = 0; i < kRequests; ++i) {
    batch += "{\"cmd\":\"echo\",\"id\":" + std::to_string(i) + ",\"pad\":\"" +
             std::string(100, 'x') + "\"}\r\n";
  }
  // A writer thread: the server stops reading while its answers are unread,
  // so one thread writing everything before reading could block forever.
  std::thread writer([&] { c.send(batch); });
  for (int i = 0; i < kRequests; ++i) {
    const json r = c.response();
    ASSERT_EQ(r["id"], i);
    ASSERT_EQ(r["ok"], true);
  }
  writer.join();
}

TEST_F(SocketServerTest, GarbageGetsBadRequestAndTheConnectionStaysUsable) {
  start();
  Client c(options_.path);
  ASSERT_TRUE(c.connected());
  for (const char* bad : {"hello\n", "[1,2,3]\n", "42\n", "{\"id\":9}\n", "{\"cmd\":1}\n",
                          "\x01\x02\xff\xfe\n", "{\"cmd\":\"echo\",\n"}) {
    SCOPED_TRACE(bad);
    c.send(bad);
    const json r = c.response();
    EXPECT_EQ(r["ok"], false);
    EXPECT_EQ(r["error"]["code"], "bad_request");
  }
  c.send("{\"cmd\":\"echo\",\"id\":10}\n");
  EXPECT_EQ(c.response()["id"], 10);
}

TEST_F(SocketServerTest, OversizeLineGetsTooLargeThenClosed) {
  start();
  for (const bool newline : {false, true}) {
    SCOPED_TRACE(newline ? "complete line" : "no newline");
    Client c(options_.path);
    ASSERT_TRUE(c.connected());
    std::string big = "{\"cmd\":\"echo\",\"x\":\"" + std::string(kControlMaxLineBytes, 'a') + "\"}";
    if (newline) big += "\n";
    c.send(big);
    const json r = c.response();
    EXPECT_EQ(r["error"]["code"], "too_large");
    EXPECT_TRUE(c.closed_by_server());
  }
}

TEST_F(SocketServerTest, OversizeLineAnswerIsDeliveredWithoutAReset) {
  start();
  Client c(options_.path);
  ASSERT_TRUE(c.connected());
  // Far more than the socket buffers hold: the client is still writing when
  // the server has seen enough to refuse the line.
  const std::string big = "{\"cmd\":\"echo\",\"x\":\"" +
                          std::string(8 * kControlMaxLineBytes, 'a') + "\"}\n";
  bool all_sent = false;
  std::thread writer([&] { all_sent = c.send(big); });
  const json r = c.response();
  writer.join();
  EXPECT_EQ(r["error"]["code"], "too_large");
  EXPECT_TRUE(all_sent) << "the server closed while the request was being sent";
  EXPECT_TRUE(c.clean_eof()) << "not a clean EOF after the answer: " << std::strerror(errno);
}

TEST_F(SocketServerTest, HalfOpenClientClosedAfterTheTimeout) {
  options_.line_timeout = std::chrono::milliseconds(100);
  start();
  Client c(options_.path);
  ASSERT_TRUE(c.connected());
  c.send("{\"cmd\":\"ec");
  const json r = c.response();
  EXPECT_EQ(r["error"]["code"], "bad_request");
  EXPECT_EQ(r["error"]["message"], "incomplete request line: no newline within 100 ms");
  EXPECT_TRUE(c.closed_by_server());
}

// A client answered once: its round trip proves the server has accepted
// (and counts) it, and orders the clients by their last activity.
std::unique_ptr<Client> answered_client(const std::string& path, int id) {
  auto c = std::make_unique<Client>(path);
  if (!c->connected()) return nullptr;
  c->send("{\"cmd\":\"echo\",\"id\":" + std::to_string(id) + "}\n");
  if (c->response()["id"] != id) return nullptr;
  return c;
}

TEST_F(SocketServerTest, ClientPastTheLimitTakesThePlaceOfTheLongestIdle) {
  options_.max_clients = 32;
  start();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 32; ++i) {
    clients.push_back(answered_client(options_.path, i));
    ASSERT_NE(clients.back(), nullptr) << "client " << i;
  }
  // An operator during an incident: served, although 32 clients sit idle.
  Client op(options_.path);
  ASSERT_TRUE(op.connected());
  op.send("{\"cmd\":\"echo\",\"id\":\"operator\"}\n");
  const json r = op.response();
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["id"], "operator");
  // The client idle the longest made room, and only it.
  EXPECT_TRUE(clients[0]->closed_by_server());
  for (int i = 1; i < 32; ++i) {
    clients[static_cast<size_t>(i)]->send("{\"cmd\":\"echo\",\"id\":" +
                                          std::to_string(100 + i) + "}\n");
    EXPECT_EQ(clients[static_cast<size_t>(i)]->response()["id"], 100 + i) << "client " << i;
  }
  // Next in line is the one idle longest now: the operator's first client
  // (answered before 1..31 were answered again).
  Client op2(options_.path);
  op2.send("{\"cmd\":\"echo\",\"id\":2}\n");
  EXPECT_EQ(op2.response()["id"], 2);
  EXPECT_TRUE(op.closed_by_server());
  clients[1]->send("{\"cmd\":\"echo\",\"id\":3}\n");
  EXPECT_EQ(clients[1]->response()["id"], 3);
}

TEST_F(SocketServerTest, BusyOnlyWhenEveryClientIsInTheMiddleOfARequest) {
  options_.max_clients = 2;
  start();
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 2; ++i) {
    clients.push_back(std::make_unique<Client>(options_.path));
    ASSERT_TRUE(clients.back()->connected());
    // One read brings the server a whole request and the start of the
    // next: once the answer is here, the server holds a partial line.
    clients.back()->send("{\"cmd\":\"echo\",\"id\":" + std::to_string(i) +
                         "}\n{\"cmd\":\"ec");
    ASSERT_EQ(clients.back()->response()["id"], i);
  }
  Client extra(options_.path);
  ASSERT_TRUE(extra.connected());
  const json r = extra.response();
  EXPECT_EQ(r["error"]["code"], "busy");
  EXPECT_TRUE(extra.closed_by_server());
  // Neither half-sent request was cut short.
  for (int i = 0; i < 2; ++i) {
    clients[static_cast<size_t>(i)]->send("ho\",\"id\":" + std::to_string(10 + i) + "}\n");
    EXPECT_EQ(clients[static_cast<size_t>(i)]->response()["id"], 10 + i);
  }
}

TEST_F(SocketServerTest, IdleClientIsClosedAfterTheIdleTimeout) {
  options_.idle_timeout = std::chrono::milliseconds(100);
  start();
  auto c = answered_client(options_.path, 1);
  ASSERT_NE(c, nullptr);
  // Closed without a message (nothing is owed between requests).
  EXPECT_EQ(c->line(), "");
  EXPECT_TRUE(c->closed_by_server());
  // A client that never sent anything is idle too.
  Client silent(options_.path);
  ASSERT_TRUE(silent.connected());
  EXPECT_TRUE(silent.closed_by_server());
}

TEST_F(SocketServerTest, SocketFileModeAndLifeCycle) {
  options_.mode = 0640;
  start();
  struct stat st {};
  ASSERT_EQ(::lstat(options_.path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);

  // A second server on the same path is refused while the first listens.
  asio::io_context other;
  auto second = SocketServer::open(other, options_, fake_handler);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, -EADDRINUSE);

  stop();
  EXPECT_NE(::lstat(options_.path.c_str(), &st), 0) << "the socket file outlived the server";
}

TEST_F(SocketServerTest, StaleSocketFileIsReplaced) {
  // What a crashed daemon leaves: a bound socket file nobody listens on.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, options_.path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  start();
  Client c(options_.path);
  c.send("{\"cmd\":\"echo\",\"id\":1}\n");
  EXPECT_EQ(c.response()["ok"], true);
}

TEST_F(SocketServerTest, RefusesToReplaceAFileThatIsNotASocket) {
  {
    FILE* f = std::fopen(options_.path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fclose(f);
  }
  auto opened = SocketServer::open(io_, options_, fake_handler);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, -EEXIST);
  struct stat st {};
  EXPECT_EQ(::lstat(options_.path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(SocketServerTest, UnknownGroupIsAnError) {
  options_.group = "sluice-no-such-group-xyz";
  auto opened = SocketServer::open(io_, options_, fake_handler);
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.error().code, -ENOENT);
  EXPECT_NE(opened.error().message.find("sluice-no-such-group-xyz"), std::string::npos);
}

// Forks a child that becomes uid/gid 65534 (nobody/nogroup), connects,
// sends `request` and returns the line it got back.
std::string exchange_as_nobody(const std::string& path, const std::string& request) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipefd[0]);
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) _exit(10);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) _exit(11);
    // A refused peer may find the connection closed before it writes.
    (void)::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    char buf[1024];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
      if (::write(pipefd[1], buf, static_cast<size_t>(n)) != n) _exit(12);
      if (std::memchr(buf, '\n', static_cast<size_t>(n)) != nullptr) break;
    }
    _exit(0);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return "child failed with status " + std::to_string(status);
  }
  return out;
}

class SocketServerCredTest : public SocketServerTest {
 protected:
  void SetUp() override {
    SocketServerTest::SetUp();
    if (::geteuid() != 0) {
      if (require_privileges()) FAIL() << "peer-credential tests need root (SLUICE_REQUIRE_BPF=1)";
      GTEST_SKIP() << "peer-credential tests need root to become another user";
    }
    // File permissions would stop the child before SO_PEERCRED does.
    options_.mode = 0666;
  }
};

TEST_F(SocketServerCredTest, OtherUserIsRefused) {
  start();
  const std::string got = exchange_as_nobody(options_.path, "{\"cmd\":\"echo\",\"id\":1}\n");
  const json r = json::parse(got, nullptr, false);
  ASSERT_TRUE(r.is_object()) << got;
  EXPECT_EQ(r["ok"], false);
  EXPECT_EQ(r["error"]["code"], "permission_denied");
  EXPECT_EQ(r["error"]["message"],
            "uid 65534 may not use this socket (root, the daemon's user or the configured group "
            "only)");
}

TEST_F(SocketServerCredTest, RefusedPeerNeverTakesAClientsPlace) {
  options_.max_clients = 1;
  start();
  auto c = answered_client(options_.path, 1);
  ASSERT_NE(c, nullptr);
  const std::string got = exchange_as_nobody(options_.path, "{\"cmd\":\"echo\",\"id\":2}\n");
  const json r = json::parse(got, nullptr, false);
  ASSERT_TRUE(r.is_object()) << got;
  EXPECT_EQ(r["error"]["code"], "permission_denied");
  c->send("{\"cmd\":\"echo\",\"id\":3}\n");
  EXPECT_EQ(c->response()["id"], 3);
}

TEST_F(SocketServerCredTest, MemberOfTheConfiguredGroupIsServed) {
  const group* gr = ::getgrgid(65534);
  if (gr == nullptr) GTEST_SKIP() << "no group 65534 on this machine";
  options_.group = gr->gr_name;
  start();
  struct stat st {};
  ASSERT_EQ(::lstat(options_.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, 65534u);
  const std::string got = exchange_as_nobody(options_.path, "{\"cmd\":\"echo\",\"id\":1}\n");
  const json r = json::parse(got, nullptr, false);
  ASSERT_TRUE(r.is_object()) << got;
  EXPECT_EQ(r["ok"], true);
  EXPECT_EQ(r["id"], 1);
}

TEST(ControlPeerAllowed, Rules) {
  EXPECT_TRUE(control_peer_allowed(0, 12345, std::nullopt));
  EXPECT_TRUE(control_peer_allowed(::geteuid(), ::getegid(), std::nullopt));
  const uid_t stranger = ::geteuid() == 4242 ? 4243 : 4242;
  EXPECT_FALSE(control_peer_allowed(stranger, 4242, std::nullopt));
  EXPECT_FALSE(control_peer_allowed(stranger, 4242, gid_t{4343}));
  EXPECT_TRUE(control_peer_allowed(stranger, 4343, gid_t{4343}));
}

}  // namespace
}  // namespace sluice
