// SPDX-License-Identifier: BSD-2-Clause
// PacketCraft: builds test frames layer by layer (Ethernet, VLAN, IPv4 with
// options, IPv6 with extension headers, TCP, UDP, ICMP errors, payload),
// filling lengths, next-protocol fields and IPv4 header checksums.
// TODO(lead): merge with tests/common/packet_builder.hpp (core tests).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "dataplane/core/ip_address.hpp"

namespace sluice::test {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

/// Parses an address literal; aborts the test binary on a typo.
IpAddress ip(std::string_view text);

/// RFC 1071 checksum of `len` bytes plus the unfolded `sum`, complemented;
/// store it big-endian (its most significant byte first).
uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t sum = 0);

/// Unfolded sum of the IPv6 pseudo-header (RFC 8200, 8.1).
uint32_t ipv6_pseudo_sum(const IpAddress& src, const IpAddress& dst, uint32_t len, uint8_t nexthdr);

/// Builds one frame. Layers are added outermost first; each IP or
/// extension header's next-protocol field and each EtherType come from the
/// layer after it unless set explicitly. Transport checksums stay zero:
/// nothing on sluice's path reads them.
class PacketCraft {
 public:
  PacketCraft& eth(const Mac& dst, const Mac& src);
  /// EtherType of the last Ethernet/VLAN layer when no IP layer follows.
  PacketCraft& ethertype(uint16_t type);
  PacketCraft& vlan(uint16_t vid, uint16_t tpid = 0x8100);

  PacketCraft& ipv4(const IpAddress& src, const IpAddress& dst);
  PacketCraft& ipv6(const IpAddress& src, const IpAddress& dst);
  /// Modifiers of the last IP layer.
  PacketCraft& tos(uint8_t tos);  ///< IPv4 TOS / IPv6 traffic class
  PacketCraft& ttl(uint8_t ttl);  ///< default 64
  PacketCraft& df();              ///< IPv4 don't-fragment
  PacketCraft& id(uint16_t id);   ///< IPv4 identification (default 0)
  PacketCraft& flow_label(uint32_t label);
  PacketCraft& ip_proto(uint8_t proto);           ///< overrides the derived protocol
  PacketCraft& ip_options(const Bytes& options);  ///< IPv4, padded to 4 bytes with EOL
  /// IPv4: fragment offset in 8-byte units and MF. IPv6: use frag6().
  PacketCraft& frag(uint16_t offset_units, bool more);
  /// IPv4 total length / IPv6 payload length, instead of the computed one.
  PacketCraft& ip_length(uint16_t len);

  /// IPv6 extension header of `type` (0, 43, 60), `len` bytes (multiple of 8).
  PacketCraft& ext6(uint8_t type, size_t len = 8);
  /// IPv6 fragment header: offset in 8-byte units, M flag; its next header
  /// is derived from the next layer unless `next` is given (a later
  /// fragment carries only payload).
  PacketCraft& frag6(uint16_t offset_units, bool more, int next = -1, uint32_t ident = 1);

  PacketCraft& tcp(uint16_t sport, uint16_t dport, uint8_t flags = 0x02 /* SYN */);
  /// TCP data offset in 32-bit words (default 5).
  PacketCraft& tcp_doff(uint8_t words);
  PacketCraft& udp(uint16_t sport, uint16_t dport);
  /// UDP length field instead of the computed one.
  PacketCraft& udp_length(uint16_t len);
  /// ICMP (after ipv4) or ICMPv6 (after ipv6) header; `info` is the 32-bit
  /// field after the checksum. The following layers are its payload (an
  /// embedded packet for errors). The checksum is computed.
  PacketCraft& icmp(uint8_t type, uint8_t code, uint32_t info = 0);

  PacketCraft& payload(const Bytes& bytes);
  PacketCraft& payload(size_t len, uint8_t fill = 0xab);

  [[nodiscard]] Bytes build() const;

 private:
  enum class Kind { kEth, kVlan, kIpv4, kIpv6, kExt6, kTcp, kUdp, kIcmp, kPayload };
  struct Layer {
    explicit Layer(Kind k) : kind(k) {}
    Kind kind;
    Mac dst{}, src{};
    IpAddress ip_src, ip_dst;
    uint16_t type = 0;  // EtherType / TPID / ext type / ICMP type+code
    uint16_t a = 0, b = 0;
    uint32_t info = 0;
    uint8_t tos = 0, ttl = 64, flags = 0;
    int proto = -1;      // explicit next protocol
    int length = -1;     // explicit length field
    uint16_t frag = 0;   // IPv4 fragment field
    uint32_t label = 0;  // IPv6 flow label
    Bytes bytes;         // options, payload
  };

  Layer& last_ip();
  static int proto_of(const Layer& next, const Layer* prev_ip);
  std::vector<Layer> layers_;
};

/// A 20-byte IPv4 header (no options) with its checksum: what sluice_lb
/// should put in front of an inner packet of `inner_len` bytes.
Bytes ipv4_header(const IpAddress& src, const IpAddress& dst, uint8_t proto, uint16_t payload_len,
                  uint8_t tos, uint8_t ttl, uint16_t frag_field, uint16_t id = 0);
/// A 40-byte IPv6 header.
Bytes ipv6_header(const IpAddress& src, const IpAddress& dst, uint8_t nexthdr, uint16_t payload_len,
                  uint8_t tclass, uint32_t flow_label, uint8_t hop_limit);
/// An Ethernet header with `tags` copied from the frame `like` (its VLAN
/// tags, if any) and a new EtherType.
Bytes eth_header(const Mac& dst, const Mac& src, const Bytes& like, size_t ntags, uint16_t type);

/// Concatenation.
Bytes cat(std::initializer_list<Bytes> parts);
/// bytes [from, from + len) of b (clamped).
Bytes slice(const Bytes& b, size_t from, size_t len = SIZE_MAX);

}  // namespace sluice::test
