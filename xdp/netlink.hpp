// SPDX-License-Identifier: BSD-2-Clause
// RtNetlink: a NETLINK_ROUTE socket (raw rtnetlink, RFC 3549) that sends one
// request and collects its replies, or waits for multicast notifications;
// and NlMessage, which builds a request with its attributes.
#pragma once

#include <linux/netlink.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "xdp/status.hpp"

namespace sluice::xdp {

/// One netlink request being built: header, fixed family header, then
/// attributes (each 4-byte aligned); at most kCapacity bytes (requests here
/// carry an address or two).
class NlMessage {
 public:
  /// `type` RTM_*, `flags` NLM_F_* beyond NLM_F_REQUEST | NLM_F_ACK (which
  /// the socket adds); `family_header` is the message's fixed struct
  /// (rtmsg, ndmsg, ifinfomsg), copied.
  NlMessage(uint16_t type, uint16_t flags, const void* family_header, size_t size);
  /// Appends attribute `type` with `size` bytes of payload.
  NlMessage& attr(uint16_t type, const void* data, size_t size);
  NlMessage& attr_u32(uint16_t type, uint32_t value) { return attr(type, &value, sizeof value); }

  /// Marks it a request wanting an ack, with sequence number `seq`.
  void prepare(uint32_t seq);
  [[nodiscard]] std::span<const uint8_t> bytes() const { return {buf_.data(), len_}; }
  /// An attribute did not fit: the message must not be sent.
  [[nodiscard]] bool overflowed() const { return overflow_; }

  static constexpr size_t kCapacity = 512;

 private:
  void append(const void* data, size_t size);
  std::array<uint8_t, kCapacity> buf_{};
  size_t len_ = 0;
  bool overflow_ = false;
};

/// One netlink message received: its type and its payload after the
/// netlink header (the family header, then attributes).
struct NlReply {
  uint16_t type = 0;
  std::vector<uint8_t> payload;
};

/// Calls f(type, payload span) for each attribute in `attrs` (rtattr
/// layout); stops at the first malformed one.
template <class F>
void for_each_attr(std::span<const uint8_t> attrs, F&& f);

/// A NETLINK_ROUTE socket in the calling thread's network namespace (the
/// namespace is fixed when the socket is opened). Move-only; closes on
/// destruction.
class RtNetlink {
 public:
  /// Opens a socket; `groups` is a mask of RTMGRP_* to receive notifications
  /// of (0 for a request socket). Extended acks are asked for, so kernel
  /// error strings reach the Error message. Errors: socket/bind errno.
  [[nodiscard]] static Result<RtNetlink> open(uint32_t groups = 0);
  /// The same on another netlink protocol (NETLINK_GENERIC), without groups.
  [[nodiscard]] static Result<RtNetlink> open_protocol(int protocol);

  RtNetlink(RtNetlink&& o) noexcept;
  RtNetlink& operator=(RtNetlink&& o) noexcept;
  RtNetlink(const RtNetlink&) = delete;
  RtNetlink& operator=(const RtNetlink&) = delete;
  ~RtNetlink();

  /// Sends `msg` (NLM_F_REQUEST | NLM_F_ACK added) and returns the replies
  /// before the kernel's ack, in order. Errors: the kernel's -errno (with its
  /// extended-ack text if any) or a socket errno; -ETIMEDOUT after 5 s
  /// without an answer.
  [[nodiscard]] Result<std::vector<NlReply>> request(NlMessage& msg);

  /// Waits up to `timeout` for notifications and returns those that arrived
  /// (empty after the timeout). -ENOBUFS means notifications were lost (the
  /// caller should re-read the state it follows).
  [[nodiscard]] Result<std::vector<NlReply>> wait_events(std::chrono::milliseconds timeout);

 private:
  explicit RtNetlink(int fd) : fd_(fd) {}
  [[nodiscard]] Result<std::vector<NlReply>> receive(uint32_t seq, bool* done, int* err,
                                                     std::string* ext, int recv_flags);
  int fd_ = -1;
  uint32_t seq_ = 0;
};

/// NETDEV_XDP_ACT_NDO_XMIT (linux/netdev.h, kernel >= 6.3): the device
/// implements ndo_xdp_xmit, so it can send the frames XDP_REDIRECT gives it
/// in native mode (a veth only while its peer has an XDP program or GRO).
inline constexpr uint64_t kXdpActNdoXmit = 4;

/// The XDP features (NETDEV_XDP_ACT_* bits) the kernel reports for interface
/// `ifindex` of the calling thread's network namespace, read through the
/// "netdev" generic-netlink family (NETDEV_CMD_DEV_GET; libbpf 1.1 has no
/// bpf_xdp_query feature_flags). Errors: -EOPNOTSUPP when the kernel has
/// no such family (before 6.3), the kernel's -errno (-ENODEV: no such
/// interface), socket errnos.
[[nodiscard]] Result<uint64_t> xdp_features(int ifindex);

template <class F>
void for_each_attr(std::span<const uint8_t> attrs, F&& f) {
  size_t at = 0;
  while (attrs.size() - at >= sizeof(uint16_t) * 2) {
    uint16_t len = 0;
    uint16_t type = 0;
    __builtin_memcpy(&len, attrs.data() + at, sizeof len);
    __builtin_memcpy(&type, attrs.data() + at + 2, sizeof type);
    if (len < 4 || len > attrs.size() - at) return;
    f(static_cast<uint16_t>(type & NLA_TYPE_MASK), attrs.subspan(at + 4, len - 4u));
    at += (len + 3u) & ~size_t{3};
  }
}

}  // namespace sluice::xdp
