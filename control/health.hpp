// SPDX-License-Identifier: BSD-2-Clause
// Health probes of backends (TCP connect, HTTP GET, memcached `version`,
// Redis PING) on a standalone Asio io_context, with the rise/fall state
// machine and an EWMA of probe round-trip times per target.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "control/config.hpp"
#include "dataplane/core/ip_address.hpp"

namespace asio {
class io_context;
}

namespace sluice {

/// Whether a backend takes new flows as far as its probes are concerned.
enum class HealthState : uint8_t { kUp, kDown };
/// "up" or "down".
const char* to_string(HealthState s);

/// What one probe found. `reason` is empty on success, else one line for
/// people: "connect: Connection refused", "timeout after 1000 ms (reply)",
/// "http status 503", "redis: unexpected reply \"-NOAUTH ...\"".
struct ProbeResult {
  bool ok = false;
  std::string reason;
  std::chrono::nanoseconds elapsed{0};  // probe start (before connect) to its end
};

/// Runs one probe of `check`'s type against addr:port (port host order):
/// connects, sends the check's request, reads at most kProbeReplyMaxBytes of
/// the reply's first line, closes the socket. `done` is called exactly
/// once, from `io`'s thread, at the latest check.timeout_ms after the call
/// (timer expiry closes the socket); it is never called inline.
///   tcp:       the connect succeeds.
///   http:      "GET <path> HTTP/1.1" with Host and "Connection: close";
///              the status line's code equals check.http_expect_status
///              (RFC 9112 section 4).
///   memcached: "version\r\n" answered by a line "VERSION <x>\r\n"
///              (memcached protocol.txt, text protocol).
///   redis:     PING as a RESP array "*1\r\n$4\r\nPING\r\n" answered by the
///              simple string "+PONG\r\n" (RESP2 specification).
void run_probe(asio::io_context& io, const IpAddress& addr, uint16_t port, const HealthCheck& check,
               std::function<void(ProbeResult)> done);

/// Bytes of a reply a probe reads at most while looking for its first line.
inline constexpr size_t kProbeReplyMaxBytes = 1024;

/// A probe target: one backend of one VIP (a backend in two VIPs is two
/// targets; their checks may differ).
struct HealthTargetKey {
  std::string vip;  // VipConfig::name
  IpAddress addr;   // the backend's address
  friend auto operator<=>(const HealthTargetKey&, const HealthTargetKey&) = default;
  friend bool operator==(const HealthTargetKey&, const HealthTargetKey&) = default;
};

/// What to probe for a target and how it starts.
struct HealthTarget {
  HealthTargetKey key;
  uint16_t port = 0;  // probe port, host order: check.port, or the VIP's port
  HealthCheck check;
  /// The state of a target new to the checker before any probe: see
  /// HealthChecker. Ignored for a target the checker already has.
  HealthState initial = HealthState::kDown;
};

/// A target's current state and probe history.
struct HealthStatus {
  HealthState state = HealthState::kDown;
  /// True until the first probe result: the state is `initial`, not measured.
  bool assumed = true;
  uint32_t consecutive_ok = 0;
  uint32_t consecutive_failed = 0;
  uint64_t probes = 0;         // probes completed
  uint64_t probes_failed = 0;  // of which failed
  std::string last_failure;    // reason of the latest failed probe; "" if none
  /// EWMA of successful probes' elapsed time, µs (kRttEwmaAlpha); unset
  /// until a probe succeeds.
  std::optional<double> rtt_ewma_us;
  std::optional<double> last_rtt_us;  // the latest successful probe, µs
};

/// The weight of a new sample in the RTT EWMA: 0.2 follows a lasting change
/// within ~10 probes (0.8^10 ~ 0.11) while one slow probe moves it by a fifth
/// of its excess, so `fastest` weights do not jump on a single outlier.
inline constexpr double kRttEwmaAlpha = 0.2;

/// A probe result for a target, given to the callback after every probe.
struct HealthEvent {
  HealthTargetKey key;
  HealthStatus status;  // after this probe
  bool probe_ok = false;
  bool state_changed = false;  // this probe flipped state (rise or fall reached)
};

/// Probes a set of targets, each every check.interval_ms, and keeps their
/// rise/fall state.
///
/// State machine: an up target goes down after `fall` consecutive failed
/// probes; a down target goes up after `rise` consecutive successes. A
/// target new to the checker starts in HealthTarget::initial:
///   - kUp for the backends of the config the daemon starts with. After a
///     restart the fast path may already be sending them traffic, and if
///     every backend started down the first one to pass `rise` probes would
///     take every new flow (and until then the VIP would be in panic). An
///     unhealthy one is found after `fall` probes, as in steady state.
///   - kDown for backends added while running (ctl add, reload): a new
///     backend takes no traffic before it proved healthy with `rise`
///     successful probes.
/// Probes of one target never overlap: the next starts check.interval_ms
/// after the previous one started, or when it ends if it took longer. The
/// first probes of the targets added by one set_targets() call are spread
/// evenly over one interval (target k of n starts k * interval / n after
/// the call), so n backends are not probed in the same instant.
///
/// Threading: all calls, and the callback, on the thread running `io`. The
/// callback may call set_targets(). Destroying the checker cancels every
/// probe; its handlers still queued in `io` then do nothing.
class HealthChecker {
 public:
  using Callback = std::function<void(const HealthEvent&)>;

  HealthChecker(asio::io_context& io, Callback on_probe);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  /// Makes `targets` the probed set: new keys start probing, keys not in
  /// the list stop (an in-flight probe is cancelled, no callback for it),
  /// retained keys keep their state, counters and RTT and take the new
  /// port and check from their next probe. Duplicate keys: the last wins.
  void set_targets(const std::vector<HealthTarget>& targets);

  /// The state of one target, or nullopt when it is not probed.
  [[nodiscard]] std::optional<HealthStatus> status(const HealthTargetKey& key) const;
  /// Every target's state, ordered by key.
  [[nodiscard]] std::vector<std::pair<HealthTargetKey, HealthStatus>> statuses() const;
  [[nodiscard]] size_t size() const { return targets_.size(); }

 private:
  struct Target;
  void start_probe(const std::shared_ptr<Target>& t);
  void on_probe_done(const std::shared_ptr<Target>& t, const ProbeResult& r);
  void schedule(const std::shared_ptr<Target>& t, std::chrono::steady_clock::duration delay);
  void stop(Target& t);

  asio::io_context& io_;
  Callback on_probe_;
  std::map<HealthTargetKey, std::shared_ptr<Target>> targets_;
};

/// A target for every backend of `config` that names a health check; its
/// probe port is the check's port, or the VIP's when that is 0. Backends
/// without a check are not probed (the daemon counts them as up).
[[nodiscard]] std::vector<HealthTarget> health_targets(const Config& config, HealthState initial);

}  // namespace sluice
