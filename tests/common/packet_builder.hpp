// SPDX-License-Identifier: BSD-2-Clause
// PacketBuilder: crafts Ethernet frames for tests and benchmarks layer by
// layer (VLAN tags, IPv4 with options, IPv6 with extension headers, TCP, UDP,
// ICMP/ICMPv6 errors quoting another packet), filling in every length, next
// header and checksum unless a test overrides one; helpers that fragment a
// built frame or place it in a buffer with headroom; and a reference
// Internet checksum written independently of dataplane/abi/csum.h.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "dataplane/abi/consts.h"
#include "dataplane/core/frame_span.hpp"
#include "dataplane/core/ip_address.hpp"

namespace sluice::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

// Addresses the tests use by default: a client, a VIP (RFC 5737 / RFC 3849
// documentation ranges).
inline constexpr const char* kClientV4 = "198.51.100.7";
inline constexpr const char* kVipV4 = "192.0.2.10";
inline constexpr const char* kClientV6 = "2001:db8:c::7";
inline constexpr const char* kVipV6 = "2001:db8:f::10";

struct EthSpec {
  Mac dst = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
  Mac src = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
};

struct VlanSpec {
  uint16_t vid = 1;                    // 12-bit VLAN id
  uint16_t tpid = SLUICE_ETH_P_8021Q;  // 0x8100, or 0x88A8 for an 802.1ad outer tag
  uint8_t pcp = 0;                     // priority, 0-7
};

struct Ipv4Spec {
  std::string src = kClientV4;
  std::string dst = kVipV4;
  uint8_t tos = 0;  // DSCP << 2 | ECN
  uint8_t ttl = 64;
  uint16_t id = 1;
  bool dont_fragment = false;
  bool more_fragments = false;
  uint16_t frag_offset = 0;  // bytes, a multiple of 8
  Bytes options{};           // padded with End-of-Options to a multiple of 4
  // Total length field, instead of the computed one (malformed packets).
  std::optional<uint16_t> total_length{};
};

struct Ipv6Spec {
  std::string src = kClientV6;
  std::string dst = kVipV6;
  uint8_t traffic_class = 0;
  uint32_t flow_label = 0;  // 20 bits
  uint8_t hop_limit = 64;
  // Payload length field, instead of the computed one (malformed packets).
  std::optional<uint16_t> payload_length{};
};

// One IPv6 extension header: hop-by-hop (0), routing (43), destination
// options (60), or fragment (44). `len` is the whole header, bytes (a
// multiple of 8; the fragment header is always 8).
struct Ipv6ExtSpec {
  uint8_t type = SLUICE_IPPROTO_DSTOPTS;
  size_t len = 8;
  uint16_t frag_offset = 0;     // fragment header: bytes, a multiple of 8
  bool more_fragments = false;  // fragment header: M flag
  uint32_t frag_id = 0;         // fragment header: identification
};

struct TcpSpec {
  uint16_t sport = 40000;
  uint16_t dport = 80;
  uint32_t seq = 1;
  uint32_t ack = 0;
  uint8_t flags = 0x02;  // SYN
  uint16_t window = 65535;
  Bytes options{};  // padded with End-of-Options to a multiple of 4
  // Data offset field, 32-bit words, instead of the computed one.
  std::optional<uint8_t> data_offset{};
};

struct UdpSpec {
  uint16_t sport = 40000;
  uint16_t dport = 53;
  // Length field, bytes, instead of the computed one.
  std::optional<uint16_t> length{};
};

// ICMP or ICMPv6 (which one follows from the enclosing IP header). `rest` is
// the 4 bytes after the checksum, host order (e.g. the MTU of a
// fragmentation-needed in its low 16 bits, or of a packet-too-big).
struct IcmpSpec {
  uint8_t type = 8;
  uint8_t code = 0;
  uint32_t rest = 0;
};

// Bytes the builder does not interpret: a payload, a quoted packet, a
// protocol it has no layer for (GRE, SCTP) or a non-IP L3 (ARP). `proto` and
// `ethertype` are what an enclosing IP header / Ethernet header names.
struct RawSpec {
  Bytes bytes{};
  uint8_t proto = SLUICE_IPPROTO_NONE;
  uint16_t ethertype = 0;
};

// Writes a 16/32-bit value in network order at b[off] (bounds-checked).
inline void put_be16(Bytes& b, size_t off, uint16_t v) {
  b.at(off) = static_cast<uint8_t>(v >> 8);
  b.at(off + 1) = static_cast<uint8_t>(v);
}

inline void put_be32(Bytes& b, size_t off, uint32_t v) {
  put_be16(b, off, static_cast<uint16_t>(v >> 16));
  put_be16(b, off + 2, static_cast<uint16_t>(v));
}

inline void put_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// Appends n bytes from `first` to b. (Byte by byte: vector::insert and
// resize+copy both trip false -Warray-bounds / -Wstringop-overflow reports
// in GCC 12 at -O3, and test frames are small.)
inline void append(Bytes& b, const uint8_t* first, size_t n) {
  b.reserve(b.size() + n);
  for (size_t i = 0; i < n; ++i) b.push_back(first[i]);
}

inline void append(Bytes& b, const Bytes& more) { append(b, more.data(), more.size()); }

inline uint16_t get_be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

inline uint32_t get_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

/// Bytes [from, from + len) of b, clamped to its end.
inline Bytes slice(const Bytes& b, size_t from, size_t len = SIZE_MAX) {
  if (from >= b.size()) return {};
  const size_t n = std::min(len, b.size() - from);
  Bytes out;
  append(out, b.data() + from, n);
  return out;
}

/// The concatenation of `parts`.
inline Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) append(out, p);
  return out;
}

/// `len` bytes counting up from `first` (wrapping): a payload in which a
/// shifted or dropped byte shows.
inline Bytes pattern(size_t len, uint8_t first = 0) {
  Bytes b(len);
  for (size_t i = 0; i < len; ++i) b[i] = static_cast<uint8_t>(first + i);
  return b;
}

// The Internet checksum (RFC 1071) of `len` bytes, continuing a partial
// 32-bit sum (e.g. of a pseudo-header).
inline uint32_t checksum_add(uint32_t sum, const uint8_t* p, size_t len) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += get_be16(p + i);
  if (len % 2 != 0) sum += static_cast<uint32_t>(p[len - 1]) << 8;
  return sum;
}

inline uint16_t checksum_fold(uint32_t sum) {
  while (sum >> 16 != 0) sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

/// The Internet checksum of `len` bytes: 0 for bytes that carry a correct one.
inline uint16_t checksum(const uint8_t* p, size_t len) {
  return checksum_fold(checksum_add(0, p, len));
}

/// Partial sum of an IPv6 pseudo-header (RFC 8200 section 8.1): 16-byte
/// source and destination, upper-layer length (bytes) and next header.
inline uint32_t pseudo_header_sum6(const uint8_t* src, const uint8_t* dst, uint8_t next_hdr,
                                   size_t len) {
  uint32_t sum = checksum_add(0, src, 16);
  sum = checksum_add(sum, dst, 16);
  return sum + next_hdr + static_cast<uint32_t>(len >> 16) + static_cast<uint32_t>(len & 0xFFFF);
}

/// The checksum of an upper-layer message over IPv6 (ICMPv6, UDP, TCP):
/// its `len` bytes at p behind the pseudo-header.
inline uint16_t checksum6(const uint8_t* src, const uint8_t* dst, uint8_t next_hdr,
                          const uint8_t* p, size_t len) {
  return checksum_fold(checksum_add(pseudo_header_sum6(src, dst, next_hdr, len), p, len));
}

inline IpAddress address(const std::string& text) {
  auto a = IpAddress::parse(text);
  if (!a.ok()) throw std::invalid_argument("packet builder: bad address " + text);
  return a.value();
}

// The first `n` bytes of a packet (an ICMP error quotes the head of one).
inline Bytes head(const Bytes& b, size_t n) {
  return Bytes(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(std::min(n, b.size())));
}

/// Builds one frame. Layers are added outermost first after the implicit
/// Ethernet header; build() serialises them innermost first so every length,
/// next-header field and checksum (IPv4 header, TCP/UDP/ICMPv6 with their
/// pseudo-header, ICMP) is correct. Throws std::invalid_argument on a
/// nonsensical stack (it is test code).
class PacketBuilder {
 public:
  PacketBuilder& eth(const EthSpec& s) {
    eth_ = s;
    return *this;
  }
  PacketBuilder& vlan(const VlanSpec& s = {}) { return add(s); }
  PacketBuilder& ipv4(const Ipv4Spec& s = {}) { return add(s); }
  PacketBuilder& ipv6(const Ipv6Spec& s = {}) { return add(s); }
  PacketBuilder& ipv6_ext(const Ipv6ExtSpec& s) { return add(s); }
  PacketBuilder& tcp(const TcpSpec& s = {}) { return add(s); }
  PacketBuilder& udp(const UdpSpec& s = {}) { return add(s); }
  PacketBuilder& icmp(const IcmpSpec& s = {}) { return add(s); }
  PacketBuilder& raw(const RawSpec& s) { return add(s); }
  /// Application bytes after the last header.
  PacketBuilder& payload(const Bytes& b) { return add(RawSpec{.bytes = b}); }
  /// An ICMP/ICMPv6 error quoting `quoted` (an IP packet, typically cut to
  /// its IP header + 8 bytes with head()).
  PacketBuilder& icmp_error(uint8_t type, uint8_t code, const Bytes& quoted, uint32_t rest = 0) {
    icmp({.type = type, .code = code, .rest = rest});
    return payload(quoted);
  }
  /// Bytes after the IP packet (Ethernet padding, FCS-like junk).
  PacketBuilder& trailer(const Bytes& b) {
    trailer_ = b;
    return *this;
  }

  /// Offset of the first IP (or raw L3) header in build()'s frame, bytes.
  [[nodiscard]] size_t l3_offset() const {
    size_t off = SLUICE_ETH_HLEN;
    for (const auto& l : layers_) {
      if (!std::holds_alternative<VlanSpec>(l)) break;
      off += SLUICE_VLAN_HLEN;
    }
    return off;
  }

  /// The whole frame: Ethernet, layers, trailer.
  [[nodiscard]] Bytes build() const {
    Bytes inner = serialise_from(0);
    Bytes f(SLUICE_ETH_HLEN);
    std::copy(eth_.dst.begin(), eth_.dst.end(), f.begin());
    std::copy(eth_.src.begin(), eth_.src.end(), f.begin() + 6);
    put_be16(f, 12, layers_.empty() ? uint16_t{0} : ethertype_of(0));
    append(f, inner);
    append(f, trailer_);
    return f;
  }

  /// The packet from the first IP header on (no Ethernet, VLAN or trailer):
  /// what an ICMP error quotes.
  [[nodiscard]] Bytes build_ip() const {
    size_t i = 0;
    while (i < layers_.size() && std::holds_alternative<VlanSpec>(layers_[i])) ++i;
    return serialise_from(i);
  }

 private:
  using Layer =
      std::variant<VlanSpec, Ipv4Spec, Ipv6Spec, Ipv6ExtSpec, TcpSpec, UdpSpec, IcmpSpec, RawSpec>;

  template <class T>
  PacketBuilder& add(const T& s) {
    layers_.emplace_back(s);
    return *this;
  }

  [[nodiscard]] Bytes serialise_from(size_t first) const {
    Bytes inner;
    for (size_t i = layers_.size(); i-- > first;) inner = serialise(i, inner);
    return inner;
  }

  // The nearest IP layer enclosing layer i, or nullptr.
  [[nodiscard]] const Layer* enclosing_ip(size_t i) const {
    while (i-- > 0) {
      if (std::holds_alternative<Ipv4Spec>(layers_[i]) ||
          std::holds_alternative<Ipv6Spec>(layers_[i])) {
        return &layers_[i];
      }
    }
    return nullptr;
  }

  [[nodiscard]] bool in_ipv6(size_t i) const {
    const Layer* ip = enclosing_ip(i);
    return ip != nullptr && std::holds_alternative<Ipv6Spec>(*ip);
  }

  // What the header before layer i names it: an IP protocol number.
  [[nodiscard]] uint8_t proto_of(size_t i) const {
    if (i >= layers_.size()) return SLUICE_IPPROTO_NONE;
    const Layer& l = layers_[i];
    if (std::holds_alternative<Ipv4Spec>(l)) return SLUICE_IPPROTO_IPIP;
    if (std::holds_alternative<Ipv6Spec>(l)) return SLUICE_IPPROTO_IPV6;
    if (const auto* e = std::get_if<Ipv6ExtSpec>(&l)) return e->type;
    if (std::holds_alternative<TcpSpec>(l)) return SLUICE_IPPROTO_TCP;
    if (std::holds_alternative<UdpSpec>(l)) return SLUICE_IPPROTO_UDP;
    if (std::holds_alternative<IcmpSpec>(l)) {
      return in_ipv6(i) ? SLUICE_IPPROTO_ICMPV6 : SLUICE_IPPROTO_ICMP;
    }
    if (const auto* r = std::get_if<RawSpec>(&l)) return r->proto;
    throw std::invalid_argument("packet builder: a VLAN tag inside IP");
  }

  // What the Ethernet header or VLAN tag before layer i names it.
  [[nodiscard]] uint16_t ethertype_of(size_t i) const {
    if (i >= layers_.size()) return 0;
    const Layer& l = layers_[i];
    if (const auto* v = std::get_if<VlanSpec>(&l)) return v->tpid;
    if (std::holds_alternative<Ipv4Spec>(l)) return SLUICE_ETH_P_IP;
    if (std::holds_alternative<Ipv6Spec>(l)) return SLUICE_ETH_P_IPV6;
    if (const auto* r = std::get_if<RawSpec>(&l)) return r->ethertype;
    throw std::invalid_argument("packet builder: an L4 header directly after Ethernet");
  }

  // Sum of the pseudo-header (RFC 793 / RFC 8200 section 8.1) of the IP
  // layer enclosing layer i, for an upper layer of `len` bytes.
  [[nodiscard]] uint32_t pseudo_header_sum(size_t i, uint8_t proto, size_t len) const {
    const Layer* ip = enclosing_ip(i);
    if (ip == nullptr) throw std::invalid_argument("packet builder: L4 header outside IP");
    if (const auto* v4 = std::get_if<Ipv4Spec>(ip)) {
      uint32_t sum = checksum_add(0, address(v4->src).ip.bytes, 4);
      sum = checksum_add(sum, address(v4->dst).ip.bytes, 4);
      return sum + proto + static_cast<uint32_t>(len >> 16) + static_cast<uint32_t>(len & 0xFFFF);
    }
    const auto& v6 = std::get<Ipv6Spec>(*ip);
    return pseudo_header_sum6(address(v6.src).ip.bytes, address(v6.dst).ip.bytes, proto, len);
  }

  static Bytes padded(Bytes b, size_t unit) {
    while (b.size() % unit != 0) b.push_back(0);  // End of Option List
    return b;
  }

  static Bytes join(Bytes header, const Bytes& inner) {
    append(header, inner);
    return header;
  }

  [[nodiscard]] Bytes serialise(size_t i, const Bytes& inner) const {
    const Layer& l = layers_[i];
    if (const auto* v = std::get_if<VlanSpec>(&l)) {
      Bytes h(SLUICE_VLAN_HLEN);
      put_be16(h, 0, static_cast<uint16_t>((v->pcp << 13) | (v->vid & 0x0FFF)));
      put_be16(h, 2, ethertype_of(i + 1));
      return join(h, inner);
    }
    if (const auto* s = std::get_if<Ipv4Spec>(&l)) {
      const Bytes opts = padded(s->options, 4);
      if (opts.size() > 40) throw std::invalid_argument("packet builder: IPv4 options > 40 bytes");
      Bytes h(SLUICE_IPV4_HLEN + opts.size());
      h[0] = static_cast<uint8_t>(0x40 | (h.size() / 4));
      h[1] = s->tos;
      put_be16(h, 2, s->total_length.value_or(static_cast<uint16_t>(h.size() + inner.size())));
      put_be16(h, 4, s->id);
      put_be16(h, 6,
               static_cast<uint16_t>((s->dont_fragment ? 0x4000 : 0) |
                                     (s->more_fragments ? 0x2000 : 0) | (s->frag_offset / 8)));
      h[8] = s->ttl;
      h[9] = proto_of(i + 1);
      std::copy_n(address(s->src).ip.bytes, 4, &h[12]);
      std::copy_n(address(s->dst).ip.bytes, 4, &h[16]);
      std::copy(opts.begin(), opts.end(), &h[20]);
      put_be16(h, 10, checksum_fold(checksum_add(0, h.data(), h.size())));
      return join(h, inner);
    }
    if (const auto* s = std::get_if<Ipv6Spec>(&l)) {
      Bytes h(SLUICE_IPV6_HLEN);
      put_be32(h, 0, (6u << 28) | (uint32_t{s->traffic_class} << 20) | (s->flow_label & 0xFFFFF));
      put_be16(h, 4, s->payload_length.value_or(static_cast<uint16_t>(inner.size())));
      h[6] = proto_of(i + 1);
      h[7] = s->hop_limit;
      std::copy_n(address(s->src).ip.bytes, 16, &h[8]);
      std::copy_n(address(s->dst).ip.bytes, 16, &h[24]);
      return join(h, inner);
    }
    if (const auto* s = std::get_if<Ipv6ExtSpec>(&l)) {
      const size_t len = s->type == SLUICE_IPPROTO_FRAGMENT ? 8 : s->len;
      if (len < 8 || len % 8 != 0 || len > 2048) {
        throw std::invalid_argument("packet builder: IPv6 extension length");
      }
      Bytes h(len);
      h[0] = proto_of(i + 1);
      if (s->type == SLUICE_IPPROTO_FRAGMENT) {
        put_be16(h, 2,
                 static_cast<uint16_t>((s->frag_offset & 0xFFF8) | (s->more_fragments ? 1 : 0)));
        put_be32(h, 4, s->frag_id);
      } else {
        h[1] = static_cast<uint8_t>(len / 8 - 1);
        if (s->type == SLUICE_IPPROTO_ROUTING) {
          // Experimental routing type (RFC 4727) with Segments Left 0: every
          // node skips it (RFC 8200 section 4.4).
          h[2] = 253;
        } else {
          // Options area: one PadN option (RFC 8200 section 4.2) filling it.
          h[2] = 1;
          h[3] = static_cast<uint8_t>(len - 4);
        }
      }
      return join(h, inner);
    }
    if (const auto* s = std::get_if<TcpSpec>(&l)) {
      const Bytes opts = padded(s->options, 4);
      if (opts.size() > 40) throw std::invalid_argument("packet builder: TCP options > 40 bytes");
      Bytes h(20 + opts.size());
      put_be16(h, 0, s->sport);
      put_be16(h, 2, s->dport);
      put_be32(h, 4, s->seq);
      put_be32(h, 8, s->ack);
      h[12] =
          static_cast<uint8_t>(s->data_offset.value_or(static_cast<uint8_t>(h.size() / 4)) << 4);
      h[13] = s->flags;
      put_be16(h, 14, s->window);
      std::copy(opts.begin(), opts.end(), &h[20]);
      Bytes seg = join(h, inner);
      uint32_t sum = pseudo_header_sum(i, SLUICE_IPPROTO_TCP, seg.size());
      put_be16(seg, 16, checksum_fold(checksum_add(sum, seg.data(), seg.size())));
      return seg;
    }
    if (const auto* s = std::get_if<UdpSpec>(&l)) {
      Bytes h(8);
      put_be16(h, 0, s->sport);
      put_be16(h, 2, s->dport);
      put_be16(h, 4, s->length.value_or(static_cast<uint16_t>(8 + inner.size())));
      Bytes seg = join(h, inner);
      uint32_t sum = pseudo_header_sum(i, SLUICE_IPPROTO_UDP, seg.size());
      uint16_t c = checksum_fold(checksum_add(sum, seg.data(), seg.size()));
      put_be16(seg, 6, c == 0 ? 0xFFFF : c);  // 0 means "no checksum" (RFC 768)
      return seg;
    }
    if (const auto* s = std::get_if<IcmpSpec>(&l)) {
      Bytes h(8);
      h[0] = s->type;
      h[1] = s->code;
      put_be32(h, 4, s->rest);
      Bytes msg = join(h, inner);
      // ICMPv6 covers a pseudo-header (RFC 4443 section 2.3); ICMP does not.
      uint32_t sum = in_ipv6(i) ? pseudo_header_sum(i, SLUICE_IPPROTO_ICMPV6, msg.size()) : 0;
      put_be16(msg, 2, checksum_fold(checksum_add(sum, msg.data(), msg.size())));
      return msg;
    }
    return join(std::get<RawSpec>(l).bytes, inner);
  }

  EthSpec eth_{};
  std::vector<Layer> layers_;
  Bytes trailer_;
};

/// Splits the IPv4 packet at `l3` in `frame` into fragments carrying at most
/// `max_data` bytes of its payload each (rounded down to a multiple of 8),
/// each a whole frame with the same L2 header. Options are copied into every
/// fragment. The datagram's L4 checksum stays valid across the fragments.
inline std::vector<Bytes> fragment_ipv4(const Bytes& frame, size_t l3, size_t max_data) {
  const size_t ihl = size_t{frame.at(l3) & 0x0Fu} * 4;
  const size_t total = get_be16(&frame.at(l3 + 2));
  const size_t step = max_data / 8 * 8;
  if (step == 0) throw std::invalid_argument("fragment_ipv4: max_data below 8");
  std::vector<Bytes> out;
  for (size_t off = 0; off < total - ihl; off += step) {
    const size_t n = std::min(step, total - ihl - off);
    const bool more = off + n < total - ihl;
    Bytes f(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(l3 + ihl));
    append(f, frame.data() + l3 + ihl + off, n);
    put_be16(f, l3 + 2, static_cast<uint16_t>(ihl + n));
    put_be16(f, l3 + 6, static_cast<uint16_t>((more ? 0x2000 : 0) | (off / 8)));
    put_be16(f, l3 + 10, 0);
    put_be16(f, l3 + 10, checksum_fold(checksum_add(0, &f[l3], ihl)));
    out.push_back(std::move(f));
  }
  return out;
}

/// Splits the IPv6 packet at `l3` in `frame` into fragments (RFC 8200
/// section 4.5): the unfragmentable part (base header, hop-by-hop and routing
/// headers) goes into every fragment, followed by a fragment header with
/// identification `id` and at most `max_data` bytes (rounded down to a
/// multiple of 8) of the rest.
inline std::vector<Bytes> fragment_ipv6(const Bytes& frame, size_t l3, size_t max_data,
                                        uint32_t id) {
  const size_t end = l3 + SLUICE_IPV6_HLEN + get_be16(&frame.at(l3 + 4));
  size_t next_field = l3 + 6;  // where the next-header value of the last unfragmentable header is
  size_t unfrag_end = l3 + SLUICE_IPV6_HLEN;
  while (frame.at(next_field) == SLUICE_IPPROTO_HOPOPTS ||
         frame.at(next_field) == SLUICE_IPPROTO_ROUTING) {
    next_field = unfrag_end;
    unfrag_end += (size_t{frame.at(unfrag_end + 1)} + 1) * 8;
  }
  const uint8_t first_fragmentable = frame[next_field];
  const size_t step = max_data / 8 * 8;
  if (step == 0) throw std::invalid_argument("fragment_ipv6: max_data below 8");
  std::vector<Bytes> out;
  for (size_t off = 0; off < end - unfrag_end; off += step) {
    const size_t n = std::min(step, end - unfrag_end - off);
    const bool more = off + n < end - unfrag_end;
    Bytes f(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(unfrag_end));
    f[next_field] = SLUICE_IPPROTO_FRAGMENT;
    Bytes fh(8);
    fh[0] = first_fragmentable;
    put_be16(fh, 2, static_cast<uint16_t>(off | (more ? 1 : 0)));
    put_be32(fh, 4, id);
    append(f, fh);
    append(f, frame.data() + unfrag_end + off, n);
    put_be16(f, l3 + 4, static_cast<uint16_t>(f.size() - l3 - SLUICE_IPV6_HLEN));
    out.push_back(std::move(f));
  }
  return out;
}

/// A frame as a fast path holds it: in a buffer with `headroom` bytes
/// before it (where headers grow, as with bpf_xdp_adjust_head or
/// rte_pktmbuf_prepend) and `tailroom` after, both filled with 0xEE so a
/// write outside the frame shows.
struct BufferedFrame {
  Bytes buf;
  FrameSpan span;     // where the frame is in buf
  size_t l3_off = 0;  // L2 header bytes
  size_t ip_len = 0;  // the IP packet's length per its header, bytes

  [[nodiscard]] uint8_t* frame() { return buf.data() + span.off; }
  [[nodiscard]] uint8_t* l3() { return frame() + l3_off; }
};

/// Places `frame` (an IP packet l3_off bytes in) in a buffer as above.
inline BufferedFrame in_buffer(const Bytes& frame, size_t l3_off, size_t headroom,
                               size_t tailroom = 0) {
  BufferedFrame t;
  t.buf.assign(headroom, 0xEE);
  append(t.buf, frame);
  t.buf.resize(t.buf.size() + tailroom, 0xEE);
  t.span = {headroom, frame.size()};
  t.l3_off = l3_off;
  const uint8_t* ip = &frame.at(l3_off);
  t.ip_len = (ip[0] >> 4) == 6 ? SLUICE_IPV6_HLEN + size_t{get_be16(ip + 4)} : get_be16(ip + 2);
  return t;
}

}  // namespace sluice::test
