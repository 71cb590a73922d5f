// SPDX-License-Identifier: BSD-2-Clause
// The metrics HTTP server: accept, read one bounded request, answer, close.
#include "control/metrics_server.hpp"

#include <algorithm>
#include <array>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <cerrno>
#include <string_view>

namespace sluice {

namespace {

using asio::ip::tcp;

// "host:port" / "[v6]:port" into an endpoint.
Result<tcp::endpoint> parse_listen(const std::string& listen) {
  const Error bad{-EINVAL,
                  "metrics listen address '" + listen + "': expected ADDRESS:PORT or [IPv6]:PORT"};
  std::string host;
  std::string port;
  if (!listen.empty() && listen.front() == '[') {
    const size_t close = listen.find("]:");
    if (close == std::string::npos) return bad;
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos || listen.find(':') != colon) return bad;
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos) {
    return bad;
  }
  const unsigned long p = std::stoul(port);
  if (p > 65535) return bad;
  asio::error_code ec;
  const asio::ip::address addr = asio::ip::make_address(host, ec);
  if (ec) return bad;
  return tcp::endpoint(addr, static_cast<uint16_t>(p));
}

std::string http_response(int status, const char* reason, const std::string& body,
                          const char* content_type, bool head) {
  std::string r = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\n";
  r += std::string("Content-Type: ") + content_type + "\r\n";
  r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  if (status == 405) r += "Allow: GET, HEAD\r\n";
  r += "Connection: close\r\n\r\n";
  if (!head) r += body;
  return r;
}

}  // namespace

class MetricsConnection;

struct MetricsServer::State {
  State(asio::io_context& io, MetricsServerOptions opts, std::function<std::string()> r)
      : options(std::move(opts)), render(std::move(r)), acceptor(io), retry(io) {}

  MetricsServerOptions options;
  std::function<std::string()> render;
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  size_t clients = 0;
  bool closed = false;
  std::vector<std::weak_ptr<MetricsConnection>> connections;

  void accept(const std::shared_ptr<State>& self);
};

class MetricsConnection : public std::enable_shared_from_this<MetricsConnection> {
 public:
  MetricsConnection(std::shared_ptr<MetricsServer::State> state, tcp::socket socket)
      : state_(std::move(state)), socket_(std::move(socket)), deadline_(socket_.get_executor()) {
    ++state_->clients;
  }
  ~MetricsConnection() { --state_->clients; }
  MetricsConnection(const MetricsConnection&) = delete;
  MetricsConnection& operator=(const MetricsConnection&) = delete;

  void start() {
    // One deadline for the whole exchange: request in, answer out.
    deadline_.expires_after(state_->options.request_timeout);
    deadline_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (!ec) self->close();
    });
    read();
  }

  void close() {
    asio::error_code ignored;
    deadline_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buf_),
                            [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                              if (ec) {
                                self->close();
                                return;
                              }
                              self->request_.append(self->buf_.data(), n);
                              self->on_data();
                            });
  }

  void on_data() {
    const size_t end = request_.find("\r\n\r\n");
    const size_t end_lf = request_.find("\n\n");
    if (end == std::string::npos && end_lf == std::string::npos) {
      if (request_.size() > state_->options.max_request_bytes) {
        respond(http_response(400, "Bad Request", "request too large\n", "text/plain", false));
        return;
      }
      read();
      return;
    }
    if (std::min(end, end_lf) > state_->options.max_request_bytes) {
      respond(http_response(400, "Bad Request", "request too large\n", "text/plain", false));
      return;
    }
    respond(answer());
  }

  std::string answer() {
    // Request line: METHOD SP TARGET SP HTTP/1.x
    const size_t eol = request_.find_first_of("\r\n");
    const std::string_view line = std::string_view(request_).substr(0, eol);
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0) {
      return http_response(400, "Bad Request", "malformed request line\n", "text/plain", false);
    }
    const std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find('?'));
    const bool head = method == "HEAD";
    if (target != "/metrics") {
      return http_response(404, "Not Found", "not found; metrics are at /metrics\n", "text/plain",
                           head);
    }
    if (method != "GET" && !head) {
      return http_response(405, "Method Not Allowed", "GET or HEAD only\n", "text/plain", false);
    }
    std::string body;
    try {
      body = state_->render();
    } catch (const std::exception& e) {
      return http_response(500, "Internal Server Error", std::string(e.what()) + "\n", "text/plain",
                           head);
    }
    return http_response(200, "OK", body, "text/plain; version=0.0.4; charset=utf-8", head);
  }

  void respond(std::string response) {
    out_ = std::move(response);
    asio::async_write(
        socket_, asio::buffer(out_),
        [self = shared_from_this()](const asio::error_code&, size_t) { self->close(); });
  }

  std::shared_ptr<MetricsServer::State> state_;
  tcp::socket socket_;
  asio::steady_timer deadline_;
  std::array<char, 2048> buf_{};
  std::string request_;
  std::string out_;
};

void MetricsServer::State::accept(const std::shared_ptr<State>& self) {
  acceptor.async_accept([self](const asio::error_code& ec, tcp::socket socket) {
    if (self->closed) return;
    if (ec) {
      self->retry.expires_after(std::chrono::milliseconds(100));
      self->retry.async_wait([self](const asio::error_code& wait_ec) {
        if (!wait_ec && !self->closed) self->accept(self);
      });
      return;
    }
    if (self->clients < self->options.max_clients) {
      auto c = std::make_shared<MetricsConnection>(self, std::move(socket));
      std::erase_if(self->connections, [](const auto& w) { return w.expired(); });
      self->connections.push_back(c);
      c->start();
    }
    // Else the socket goes out of scope: closed unanswered.
    self->accept(self);
  });
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::open(asio::io_context& io,
                                                           MetricsServerOptions options,
                                                           std::function<std::string()> render) {
  auto endpoint = parse_listen(options.listen);
  if (!endpoint) return endpoint.error();
  auto state = std::make_shared<State>(io, std::move(options), std::move(render));
  const std::string& listen = state->options.listen;
  asio::error_code ec;
  state->acceptor.open(endpoint.value().protocol(), ec);
  if (!ec) state->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) state->acceptor.bind(endpoint.value(), ec);
  if (!ec) state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error{-ec.value(), "metrics listen address " + listen + ": " + ec.message()};
  state->accept(state);
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(state)));
}

MetricsServer::~MetricsServer() {
  state_->closed = true;
  asio::error_code ignored;
  state_->acceptor.close(ignored);
  state_->retry.cancel();
  for (const auto& w : state_->connections) {
    if (auto c = w.lock()) c->close();
  }
}

uint16_t MetricsServer::port() const {
  asio::error_code ec;
  return state_->acceptor.local_endpoint(ec).port();
}

}  // namespace sluice
