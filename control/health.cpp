// SPDX-License-Identifier: BSD-2-Clause
// Health probes and the per-target rise/fall state machine (health.hpp).
#include "control/health.hpp"

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <cctype>
#include <cstring>
#include <string_view>

namespace sluice {

const char* to_string(HealthState s) { return s == HealthState::kUp ? "up" : "down"; }

namespace {

using Clock = std::chrono::steady_clock;

// The longest slice of a reply quoted in a failure reason, bytes.
constexpr size_t kQuoteMaxBytes = 64;

asio::ip::tcp::endpoint endpoint_of(const IpAddress& addr, uint16_t port) {
  if (addr.is_v6()) {
    asio::ip::address_v6::bytes_type b{};
    std::memcpy(b.data(), addr.ip.bytes, b.size());
    return {asio::ip::address_v6(b), port};
  }
  asio::ip::address_v4::bytes_type b{};
  std::memcpy(b.data(), addr.ip.bytes, b.size());
  return {asio::ip::address_v4(b), port};
}

std::string request_of(const HealthCheck& check, const IpAddress& addr, uint16_t port) {
  switch (check.type) {
    case CheckType::kTcp:
      return {};
    case CheckType::kHttp: {
      std::string host = addr.is_v6() ? '[' + addr.to_string() + ']' : addr.to_string();
      if (port != 80) host += ':' + std::to_string(port);
      return "GET " + check.http_path + " HTTP/1.1\r\nHost: " + host +
             "\r\nUser-Agent: sluice-health\r\nAccept: */*\r\nConnection: close\r\n\r\n";
    }
    case CheckType::kMemcached:
      return "version\r\n";
    case CheckType::kRedis:
      return "*1\r\n$4\r\nPING\r\n";
  }
  return {};
}

// A reply line for a reason text: quoted, cut to kQuoteMaxBytes, bytes that
// are not printable ASCII shown as '?' so a binary reply cannot garble logs.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < kQuoteMaxBytes; ++i) {
    const char c = s[i];
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  if (s.size() > kQuoteMaxBytes) out += "...";
  return out + '"';
}

// Judges a reply's first line (line end removed): "" when healthy, else why not.
std::string judge_line(const HealthCheck& check, std::string_view line) {
  switch (check.type) {
    case CheckType::kTcp:
      return {};
    case CheckType::kHttp: {
      // status-line = HTTP-version SP status-code SP [ reason-phrase ]
      // (RFC 9112 section 4); HTTP-version = "HTTP/" DIGIT "." DIGIT.
      const bool shaped =
          line.size() >= 12 && line.substr(0, 5) == "HTTP/" &&
          std::isdigit(static_cast<unsigned char>(line[5])) && line[6] == '.' &&
          std::isdigit(static_cast<unsigned char>(line[7])) && line[8] == ' ' &&
          std::all_of(line.begin() + 9, line.begin() + 12,
                      [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }) &&
          (line.size() == 12 || line[12] == ' ');
      if (!shaped) return "http: malformed status line " + quote(line);
      const int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
      if (status != check.http_expect_status) return "http status " + std::to_string(status);
      return {};
    }
    case CheckType::kMemcached:
      if (line.substr(0, 8) != "VERSION ") return "memcached: unexpected reply " + quote(line);
      return {};
    case CheckType::kRedis:
      if (line != "+PONG") return "redis: unexpected reply " + quote(line);
      return {};
  }
  return "unknown check type";
}

// One probe in flight. Owned by the handlers queued for it (and by the
// target that started it, to cancel it); finishes exactly once.
class Probe : public std::enable_shared_from_this<Probe> {
 public:
  Probe(asio::io_context& io, HealthCheck check, std::function<void(ProbeResult)> done)
      : socket_(io), deadline_(io), check_(std::move(check)), done_(std::move(done)) {}

  void start(const IpAddress& addr, uint16_t port) {
    started_ = Clock::now();
    request_ = request_of(check_, addr, port);
    deadline_.expires_after(std::chrono::milliseconds(check_.timeout_ms));
    deadline_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (ec) return;  // cancelled: the probe ended first
      self->finish(false, "timeout after " + std::to_string(self->check_.timeout_ms) + " ms (" +
                              self->phase_ + ')');
    });
    socket_.async_connect(
        endpoint_of(addr, port),
        [self = shared_from_this()](const asio::error_code& ec) { self->on_connect(ec); });
  }

  // Ends the probe without calling back (its target was removed).
  void cancel() {
    done_ = nullptr;
    close();
  }

 private:
  void on_connect(const asio::error_code& ec) {
    if (finished_) return;
    if (ec) return finish(false, "connect: " + ec.message());
    if (check_.type == CheckType::kTcp) return finish(true, {});
    phase_ = "send";
    asio::async_write(socket_, asio::buffer(request_),
                      [self = shared_from_this()](const asio::error_code& e, size_t) {
                        if (self->finished_) return;
                        if (e) return self->finish(false, "send: " + e.message());
                        self->phase_ = "reply";
                        self->read_more();
                      });
  }

  void read_more() {
    socket_.async_read_some(asio::buffer(reply_.data() + reply_len_, reply_.size() - reply_len_),
                            [self = shared_from_this()](const asio::error_code& ec, size_t n) {
                              self->on_read(ec, n);
                            });
  }

  void on_read(const asio::error_code& ec, size_t n) {
    if (finished_) return;
    reply_len_ += n;
    const std::string_view got(reply_.data(), reply_len_);
    if (const size_t eol = got.find('\n'); eol != std::string_view::npos) {
      std::string_view line = got.substr(0, eol);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      std::string why = judge_line(check_, line);
      const bool ok = why.empty();  // before `why` is moved from
      return finish(ok, std::move(why));
    }
    if (ec == asio::error::eof) {
      return finish(false, reply_len_ == 0
                               ? std::string("reply: connection closed before a reply")
                               : "reply: connection closed after " + std::to_string(reply_len_) +
                                     " bytes without a line end");
    }
    if (ec) return finish(false, "reply: " + ec.message());
    if (reply_len_ == reply_.size())
      return finish(false,
                    "reply: no line end in the first " + std::to_string(reply_.size()) + " bytes");
    read_more();
  }

  void finish(bool ok, std::string reason) {
    if (finished_) return;
    const auto elapsed = Clock::now() - started_;
    close();
    if (auto done = std::move(done_)) done(ProbeResult{ok, std::move(reason), elapsed});
  }

  void close() {
    finished_ = true;
    deadline_.cancel();
    asio::error_code ignored;
    socket_.close(ignored);
  }

  asio::ip::tcp::socket socket_;
  asio::steady_timer deadline_;
  HealthCheck check_;
  std::function<void(ProbeResult)> done_;
  std::string request_;
  std::array<char, kProbeReplyMaxBytes> reply_{};
  size_t reply_len_ = 0;
  Clock::time_point started_;
  const char* phase_ = "connect";  // for the timeout reason: what it waited for
  bool finished_ = false;
};

std::shared_ptr<Probe> start_probe_on(asio::io_context& io, const IpAddress& addr, uint16_t port,
                                      const HealthCheck& check,
                                      std::function<void(ProbeResult)> done) {
  auto p = std::make_shared<Probe>(io, check, std::move(done));
  p->start(addr, port);
  return p;
}

}  // namespace

void run_probe(asio::io_context& io, const IpAddress& addr, uint16_t port, const HealthCheck& check,
               std::function<void(ProbeResult)> done) {
  (void)start_probe_on(io, addr, port, check, std::move(done));
}

struct HealthChecker::Target {
  Target(asio::io_context& io, const HealthTarget& t)
      : key(t.key), port(t.port), check(t.check), timer(io) {
    status.state = t.initial;
  }
  HealthTargetKey key;
  uint16_t port;
  HealthCheck check;
  HealthStatus status;
  asio::steady_timer timer;      // until the next probe
  std::shared_ptr<Probe> probe;  // the probe in flight, if any
  Clock::time_point probe_started;
  bool stopped = false;  // removed, or the checker is gone: handlers do nothing
};

HealthChecker::HealthChecker(asio::io_context& io, Callback on_probe)
    : io_(io), on_probe_(std::move(on_probe)) {}

HealthChecker::~HealthChecker() {
  for (auto& [key, t] : targets_) stop(*t);
}

void HealthChecker::stop(Target& t) {
  t.stopped = true;
  t.timer.cancel();
  if (t.probe) t.probe->cancel();
  t.probe.reset();
}

void HealthChecker::set_targets(const std::vector<HealthTarget>& targets) {
  std::map<HealthTargetKey, const HealthTarget*> wanted;
  for (const HealthTarget& t : targets) wanted[t.key] = &t;

  for (auto it = targets_.begin(); it != targets_.end();) {
    if (wanted.count(it->first) == 0) {
      stop(*it->second);
      it = targets_.erase(it);
    } else {
      ++it;
    }
  }

  size_t added = 0;
  for (const auto& [key, t] : wanted) added += targets_.count(key) == 0 ? 1 : 0;
  size_t k = 0;
  for (const auto& [key, t] : wanted) {
    if (auto it = targets_.find(key); it != targets_.end()) {
      it->second->port = t->port;
      it->second->check = t->check;
      continue;
    }
    auto target = std::make_shared<Target>(io_, *t);
    targets_.emplace(key, target);
    const auto interval = std::chrono::milliseconds(t->check.interval_ms);
    schedule(target, interval * static_cast<int64_t>(k) / static_cast<int64_t>(added));
    ++k;
  }
}

void HealthChecker::schedule(const std::shared_ptr<Target>& t, Clock::duration delay) {
  t->timer.expires_after(delay);
  t->timer.async_wait([this, t](const asio::error_code& ec) {
    if (ec || t->stopped) return;
    start_probe(t);
  });
}

void HealthChecker::start_probe(const std::shared_ptr<Target>& t) {
  t->probe_started = Clock::now();
  t->probe = start_probe_on(io_, t->key.addr, t->port, t->check, [this, t](ProbeResult r) {
    if (t->stopped) return;
    on_probe_done(t, r);
  });
}

void HealthChecker::on_probe_done(const std::shared_ptr<Target>& t, const ProbeResult& r) {
  t->probe.reset();
  HealthStatus& s = t->status;
  const HealthState before = s.state;
  s.assumed = false;
  ++s.probes;
  if (r.ok) {
    ++s.consecutive_ok;
    s.consecutive_failed = 0;
    const double us = std::chrono::duration<double, std::micro>(r.elapsed).count();
    s.last_rtt_us = us;
    s.rtt_ewma_us = s.rtt_ewma_us ? *s.rtt_ewma_us + kRttEwmaAlpha * (us - *s.rtt_ewma_us) : us;
    if (s.state == HealthState::kDown && s.consecutive_ok >= std::max(t->check.rise, 1u))
      s.state = HealthState::kUp;
  } else {
    ++s.probes_failed;
    ++s.consecutive_failed;
    s.consecutive_ok = 0;
    s.last_failure = r.reason;
    if (s.state == HealthState::kUp && s.consecutive_failed >= std::max(t->check.fall, 1u))
      s.state = HealthState::kDown;
  }

  // Fixed rate from the previous start; at once when the probe overran.
  const auto next = t->probe_started + std::chrono::milliseconds(t->check.interval_ms);
  schedule(t, std::max(next - Clock::now(), Clock::duration::zero()));

  if (on_probe_) on_probe_(HealthEvent{t->key, s, r.ok, s.state != before});
}

std::optional<HealthStatus> HealthChecker::status(const HealthTargetKey& key) const {
  const auto it = targets_.find(key);
  if (it == targets_.end()) return std::nullopt;
  return it->second->status;
}

std::vector<std::pair<HealthTargetKey, HealthStatus>> HealthChecker::statuses() const {
  std::vector<std::pair<HealthTargetKey, HealthStatus>> out;
  out.reserve(targets_.size());
  for (const auto& [key, t] : targets_) out.emplace_back(key, t->status);
  return out;
}

std::vector<HealthTarget> health_targets(const Config& config, HealthState initial) {
  std::vector<HealthTarget> out;
  for (const VipConfig& vip : config.vips) {
    for (const BackendConfig& b : vip.backends) {
      if (b.health_check.empty()) continue;
      const HealthCheck* hc = config.find_health_check(b.health_check);
      if (hc == nullptr) continue;  // the loader rejects such a config
      out.push_back(HealthTarget{HealthTargetKey{vip.name, b.addr},
                                 hc->port != 0 ? hc->port : vip.port, *hc, initial});
    }
  }
  return out;
}

}  // namespace sluice
