// SPDX-License-Identifier: BSD-2-Clause
// RtNetlink: request/ack exchange and notification reads on NETLINK_ROUTE.
#include "xdp/netlink.hpp"

#include <linux/genetlink.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

namespace sluice::xdp {
namespace {

constexpr size_t kAlign = 4;
constexpr size_t align4(size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); }
// Large enough for any single rtnetlink message sluice reads (routes,
// neighbours, links with their stats).
constexpr size_t kRecvBuffer = 64 * 1024;
constexpr int kRequestTimeoutSeconds = 5;

}  // namespace

NlMessage::NlMessage(uint16_t type, uint16_t flags, const void* family_header, size_t size) {
  nlmsghdr h{};
  h.nlmsg_type = type;
  h.nlmsg_flags = flags;
  std::memcpy(buf_.data(), &h, sizeof h);
  len_ = NLMSG_HDRLEN;
  append(family_header, size);
}

void NlMessage::append(const void* data, size_t size) {
  if (size > buf_.size() - len_ || align4(size) > buf_.size() - len_) {
    overflow_ = true;
    return;
  }
  if (size != 0) std::memcpy(buf_.data() + len_, data, size);
  len_ += align4(size);
  const auto total = static_cast<uint32_t>(len_);
  std::memcpy(buf_.data() + offsetof(nlmsghdr, nlmsg_len), &total, sizeof total);
}

NlMessage& NlMessage::attr(uint16_t type, const void* data, size_t size) {
  if (size > 0xffff - 4u || align4(4 + size) > buf_.size() - len_) {
    overflow_ = true;
    return *this;
  }
  const auto len = static_cast<uint16_t>(4 + size);
  uint8_t head[4];
  std::memcpy(head, &len, 2);
  std::memcpy(head + 2, &type, 2);
  std::memcpy(buf_.data() + len_, head, 4);
  if (size != 0) std::memcpy(buf_.data() + len_ + 4, data, size);
  len_ += align4(len);
  const auto total = static_cast<uint32_t>(len_);
  std::memcpy(buf_.data() + offsetof(nlmsghdr, nlmsg_len), &total, sizeof total);
  return *this;
}

void NlMessage::prepare(uint32_t seq) {
  nlmsghdr h{};
  std::memcpy(&h, buf_.data(), sizeof h);
  h.nlmsg_flags = static_cast<uint16_t>(h.nlmsg_flags | NLM_F_REQUEST | NLM_F_ACK);
  h.nlmsg_seq = seq;
  std::memcpy(buf_.data(), &h, sizeof h);
}

Result<RtNetlink> RtNetlink::open_protocol(int protocol) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) return sys_error(errno, "opening a netlink socket");
  RtNetlink nl(fd);
  const int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  timeval tv{kRequestTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return sys_error(errno, "binding a netlink socket");
  return nl;
}

Result<uint64_t> xdp_features(int ifindex) {
  // linux/netdev.h (kernel >= 6.3; Debian 12's headers predate it).
  constexpr uint8_t kNetdevCmdDevGet = 1;
  constexpr uint16_t kNetdevADevIfindex = 1;
  constexpr uint16_t kNetdevADevXdpFeatures = 3;
  auto nl = RtNetlink::open_protocol(NETLINK_GENERIC);
  if (!nl.ok()) return nl.error();
  genlmsghdr g{};
  g.cmd = CTRL_CMD_GETFAMILY;
  g.version = 1;
  NlMessage fam(GENL_ID_CTRL, 0, &g, sizeof g);
  fam.attr(CTRL_ATTR_FAMILY_NAME, "netdev", sizeof "netdev");
  auto found = nl.value().request(fam);
  if (!found.ok()) {
    if (found.error().code == -ENOENT)
      return Error{-EOPNOTSUPP, "the kernel has no netdev netlink family (XDP features)"};
    return found.error();
  }
  uint16_t family = 0;
  for (const NlReply& r : found.value()) {
    if (r.payload.size() < sizeof g) continue;
    for_each_attr(std::span<const uint8_t>(r.payload).subspan(sizeof g),
                  [&](uint16_t type, std::span<const uint8_t> v) {
                    if (type == CTRL_ATTR_FAMILY_ID && v.size() >= 2)
                      std::memcpy(&family, v.data(), 2);
                  });
  }
  if (family == 0) return Error{-EOPNOTSUPP, "no id for the netdev netlink family"};
  g.cmd = kNetdevCmdDevGet;
  NlMessage get(family, 0, &g, sizeof g);
  get.attr_u32(kNetdevADevIfindex, static_cast<uint32_t>(ifindex));
  auto dev = nl.value().request(get);
  if (!dev.ok()) return dev.error();
  for (const NlReply& r : dev.value()) {
    if (r.payload.size() < sizeof g) continue;
    std::optional<uint64_t> features;
    for_each_attr(std::span<const uint8_t>(r.payload).subspan(sizeof g),
                  [&](uint16_t type, std::span<const uint8_t> v) {
                    if (type == kNetdevADevXdpFeatures && v.size() >= 8) {
                      uint64_t f = 0;
                      std::memcpy(&f, v.data(), 8);
                      features = f;
                    }
                  });
    if (features) return *features;
  }
  return Error{-EOPNOTSUPP, "no XDP features reported for ifindex " + std::to_string(ifindex)};
}

Result<RtNetlink> RtNetlink::open(uint32_t groups) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return sys_error(errno, "opening a NETLINK_ROUTE socket");
  RtNetlink nl(fd);
  const int one = 1;
  // Both are hints: without them errors still arrive, only shorter.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  if (groups == 0) {
    timeval tv{kRequestTimeoutSeconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = groups;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return sys_error(errno, "binding a NETLINK_ROUTE socket");
  return nl;
}

RtNetlink::RtNetlink(RtNetlink&& o) noexcept : fd_(std::exchange(o.fd_, -1)), seq_(o.seq_) {}

RtNetlink& RtNetlink::operator=(RtNetlink&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    seq_ = o.seq_;
  }
  return *this;
}

RtNetlink::~RtNetlink() {
  if (fd_ >= 0) close(fd_);
}

Result<std::vector<NlReply>> RtNetlink::request(NlMessage& msg) {
  if (msg.overflowed()) return Error{-EMSGSIZE, "netlink request too large"};
  const uint32_t seq = ++seq_;
  msg.prepare(seq);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  const auto bytes = msg.bytes();
  if (sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof kernel) < 0)
    return sys_error(errno, "sending a netlink request");
  std::vector<NlReply> all;
  bool done = false;
  int err = 0;
  std::string ext;
  while (!done) {
    auto part = receive(seq, &done, &err, &ext, 0);
    if (!part.ok()) return part.error();
    for (auto& r : part.value()) all.push_back(std::move(r));
  }
  if (err != 0) {
    Error e = sys_error(err, "netlink request");
    if (!ext.empty()) e.message += " [kernel: " + ext + "]";
    return e;
  }
  return all;
}

Result<std::vector<NlReply>> RtNetlink::receive(uint32_t seq, bool* done, int* err,
                                                std::string* ext, int recv_flags) {
  std::vector<uint8_t> buf(kRecvBuffer);
  const ssize_t n = recv(fd_, buf.data(), buf.size(), recv_flags);
  if (n < 0) {
    const int e = errno == EAGAIN || errno == EWOULDBLOCK ? ETIMEDOUT : errno;
    return sys_error(e, "reading a netlink answer");
  }
  std::vector<NlReply> out;
  const auto total = static_cast<size_t>(n);
  // Messages are 4-byte aligned one after the other; each header is copied
  // out rather than cast in place.
  for (size_t at = 0; total - at >= sizeof(nlmsghdr);) {
    nlmsghdr hdr{};
    std::memcpy(&hdr, buf.data() + at, sizeof hdr);
    if (hdr.nlmsg_len < NLMSG_HDRLEN || hdr.nlmsg_len > total - at) break;
    const nlmsghdr* h = &hdr;
    const uint8_t* data = buf.data() + at + NLMSG_HDRLEN;
    const size_t len = hdr.nlmsg_len - NLMSG_HDRLEN;
    at = std::min<size_t>(total, at + NLMSG_ALIGN(hdr.nlmsg_len));
    // With seq 0 (notifications) every message counts.
    if (seq != 0 && h->nlmsg_seq != seq) continue;
    if (h->nlmsg_type == NLMSG_DONE) {
      *done = true;
      continue;
    }
    if (h->nlmsg_type == NLMSG_ERROR) {
      *done = true;
      if (len < sizeof(nlmsgerr)) {
        *err = EPROTO;
        continue;
      }
      nlmsgerr e{};
      std::memcpy(&e, data, sizeof e);
      *err = -e.error;
      // Extended ack: TLVs after the echoed request header (only the
      // header, NETLINK_CAP_ACK) when NLM_F_ACK_TLVS is set.
      if ((h->nlmsg_flags & NLM_F_ACK_TLVS) != 0 && e.error != 0) {
        size_t tlv = sizeof(nlmsgerr);
        if ((h->nlmsg_flags & NLM_F_CAPPED) == 0)
          tlv += NLMSG_ALIGN(std::max<size_t>(e.msg.nlmsg_len, NLMSG_HDRLEN)) - NLMSG_HDRLEN;
        if (tlv < len) {
          for_each_attr(std::span<const uint8_t>(data + tlv, len - tlv),
                        [&](uint16_t type, std::span<const uint8_t> v) {
                          if (type == NLMSGERR_ATTR_MSG && !v.empty())
                            ext->assign(reinterpret_cast<const char*>(v.data()),
                                        strnlen(reinterpret_cast<const char*>(v.data()), v.size()));
                        });
        }
      }
      continue;
    }
    NlReply r;
    r.type = h->nlmsg_type;
    r.payload.assign(data, data + len);
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<NlReply>> RtNetlink::wait_events(std::chrono::milliseconds timeout) {
  pollfd p{fd_, POLLIN, 0};
  const int ms = timeout.count() < 0 ? 0 : static_cast<int>(timeout.count());
  const int r = poll(&p, 1, ms);
  if (r < 0) return sys_error(errno, "waiting for netlink notifications");
  std::vector<NlReply> all;
  if (r == 0) return all;
  // Drain what is queued; ETIMEDOUT here is "nothing more queued".
  for (;;) {
    bool done = false;
    int err = 0;
    std::string ext;
    auto part = receive(0, &done, &err, &ext, MSG_DONTWAIT);
    if (!part.ok()) {
      if (part.error().code == -ETIMEDOUT) break;
      return part.error();
    }
    for (auto& m : part.value()) all.push_back(std::move(m));
  }
  return all;
}

}  // namespace sluice::xdp
