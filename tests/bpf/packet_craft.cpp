// SPDX-License-Identifier: BSD-2-Clause
// PacketCraft: test frames built layer by layer (see packet_craft.hpp).
#include "tests/bpf/packet_craft.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sluice::test {
namespace {

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthIpv6 = 0x86DD;

void put16(Bytes& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

void put32(Bytes& b, size_t at, uint32_t v) {
  put16(b, at, static_cast<uint16_t>(v >> 16));
  put16(b, at + 2, static_cast<uint16_t>(v));
}

uint32_t sum_words(const uint8_t* data, size_t len, uint32_t sum) {
  uint64_t s = sum;
  for (size_t i = 0; i + 1 < len; i += 2) s += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (len % 2 != 0) s += static_cast<uint32_t>(data[len - 1] << 8);
  while (s >> 32 != 0) s = (s & 0xffffffffu) + (s >> 32);
  return static_cast<uint32_t>(s);
}

}  // namespace

IpAddress ip(std::string_view text) {
  auto r = IpAddress::parse(text);
  if (!r.ok()) {
    std::fprintf(stderr, "bad address literal in a test: %.*s\n", static_cast<int>(text.size()),
                 text.data());
    std::abort();
  }
  // IpAddress's `ip {}` zeroes only the union's first member: clear the
  // bytes an IPv4 address leaves unused, as flow keys require.
  IpAddress a = r.value();
  if (!a.is_v6()) std::memset(a.ip.bytes + 4, 0, 12);
  return a;
}

uint16_t inet_checksum(const uint8_t* data, size_t len, uint32_t sum) {
  uint32_t s = sum_words(data, len, sum);
  while (s >> 16 != 0) s = (s & 0xffffu) + (s >> 16);
  return static_cast<uint16_t>(~s & 0xffffu);
}

uint32_t ipv6_pseudo_sum(const IpAddress& src, const IpAddress& dst, uint32_t len,
                         uint8_t nexthdr) {
  uint8_t tail[8] = {static_cast<uint8_t>(len >> 24),
                     static_cast<uint8_t>(len >> 16),
                     static_cast<uint8_t>(len >> 8),
                     static_cast<uint8_t>(len),
                     0,
                     0,
                     0,
                     nexthdr};
  uint32_t s = sum_words(src.ip.bytes, 16, 0);
  s = sum_words(dst.ip.bytes, 16, s);
  return sum_words(tail, sizeof tail, s);
}

PacketCraft& PacketCraft::eth(const Mac& dst, const Mac& src) {
  Layer l(Kind::kEth);
  l.dst = dst;
  l.src = src;
  layers_.push_back(l);
  return *this;
}

PacketCraft& PacketCraft::ethertype(uint16_t type) {
  layers_.back().proto = type;
  return *this;
}

PacketCraft& PacketCraft::vlan(uint16_t vid, uint16_t tpid) {
  Layer l(Kind::kVlan);
  l.type = tpid;
  l.a = vid;
  layers_.push_back(l);
  return *this;
}

PacketCraft& PacketCraft::ipv4(const IpAddress& src, const IpAddress& dst) {
  Layer l(Kind::kIpv4);
  l.ip_src = src;
  l.ip_dst = dst;
  layers_.push_back(l);
  return *this;
}

PacketCraft& PacketCraft::ipv6(const IpAddress& src, const IpAddress& dst) {
  Layer l(Kind::kIpv6);
  l.ip_src = src;
  l.ip_dst = dst;
  layers_.push_back(l);
  return *this;
}

PacketCraft::Layer& PacketCraft::last_ip() {
  for (auto it = layers_.rbegin(); it != layers_.rend(); ++it)
    if (it->kind == Kind::kIpv4 || it->kind == Kind::kIpv6) return *it;
  std::fprintf(stderr, "PacketCraft: IP modifier without an IP layer\n");
  std::abort();
}

PacketCraft& PacketCraft::tos(uint8_t tos) {
  last_ip().tos = tos;
  return *this;
}
PacketCraft& PacketCraft::ttl(uint8_t ttl) {
  last_ip().ttl = ttl;
  return *this;
}
PacketCraft& PacketCraft::df() {
  last_ip().frag |= 0x4000;
  return *this;
}
PacketCraft& PacketCraft::id(uint16_t id) {
  last_ip().b = id;
  return *this;
}
PacketCraft& PacketCraft::flow_label(uint32_t label) {
  last_ip().label = label & 0xfffff;
  return *this;
}
PacketCraft& PacketCraft::ip_proto(uint8_t proto) {
  last_ip().proto = proto;
  return *this;
}
PacketCraft& PacketCraft::ip_options(const Bytes& options) {
  Layer& l = last_ip();
  l.bytes = options;
  while (l.bytes.size() % 4 != 0) l.bytes.push_back(0);
  return *this;
}
PacketCraft& PacketCraft::frag(uint16_t offset_units, bool more) {
  Layer& l = last_ip();
  l.frag = static_cast<uint16_t>((l.frag & 0x4000) | (more ? 0x2000 : 0) | (offset_units & 0x1fff));
  return *this;
}
PacketCraft& PacketCraft::ip_length(uint16_t len) {
  last_ip().length = len;
  return *this;
}

PacketCraft& PacketCraft::ext6(uint8_t type, size_t len) {
  Layer l(Kind::kExt6);
  l.type = type;
  l.a = static_cast<uint16_t>(len);
  layers_.push_back(l);
  return *this;
}

PacketCraft& PacketCraft::frag6(uint16_t offset_units, bool more, int next, uint32_t ident) {
  Layer l(Kind::kExt6);
  l.proto = next;
  l.type = 44;
  l.a = 8;
  l.frag = static_cast<uint16_t>(offset_units << 3 | (more ? 1 : 0));
  l.info = ident;
  layers_.push_back(l);
  return *this;
}

PacketCraft& PacketCraft::tcp(uint16_t sport, uint16_t dport, uint8_t flags) {
  Layer l(Kind::kTcp);
  l.a = sport;
  l.b = dport;
  l.flags = flags;
  l.length = 5;
  layers_.push_back(l);
  return *this;
}

PacketCraft& PacketCraft::tcp_doff(uint8_t words) {
  layers_.back().length = words;
  return *this;
}

PacketCraft& PacketCraft::udp(uint16_t sport, uint16_t dport) {
  Layer l(Kind::kUdp);
  l.a = sport;
  l.b = dport;
  layers_.push_back(l);
  return *this;
}

PacketCraft& PacketCraft::udp_length(uint16_t len) {
  layers_.back().length = len;
  return *this;
}

PacketCraft& PacketCraft::icmp(uint8_t type, uint8_t code, uint32_t info) {
  Layer l(Kind::kIcmp);
  l.type = static_cast<uint16_t>(type << 8 | code);
  l.info = info;
  layers_.push_back(l);
  return *this;
}

PacketCraft& PacketCraft::payload(const Bytes& bytes) {
  Layer l(Kind::kPayload);
  l.bytes = bytes;
  layers_.push_back(l);
  return *this;
}

PacketCraft& PacketCraft::payload(size_t len, uint8_t fill) {
  Bytes b(len);
  for (size_t i = 0; i < len; ++i) b[i] = static_cast<uint8_t>(fill + i);
  return payload(b);
}

int PacketCraft::proto_of(const Layer& next, const Layer* ip) {
  const bool v6 = ip != nullptr && ip->kind == Kind::kIpv6;
  switch (next.kind) {
    case Kind::kTcp:
      return 6;
    case Kind::kUdp:
      return 17;
    case Kind::kIcmp:
      return v6 ? 58 : 1;
    case Kind::kIpv4:
      return 4;
    case Kind::kIpv6:
      return 41;
    case Kind::kExt6:
      return next.type;
    default:
      return 59;
  }
}

Bytes PacketCraft::build() const {
  const size_t n = layers_.size();
  // The IP layer each layer sits in (the nearest one before it).
  std::vector<const Layer*> ip_of(n, nullptr);
  const Layer* cur = nullptr;
  for (size_t i = 0; i < n; ++i) {
    ip_of[i] = cur;
    if (layers_[i].kind == Kind::kIpv4 || layers_[i].kind == Kind::kIpv6) cur = &layers_[i];
  }

  Bytes inner;
  for (size_t k = n; k-- > 0;) {
    const Layer& l = layers_[k];
    const Layer* next = k + 1 < n ? &layers_[k + 1] : nullptr;
    Bytes h;
    switch (l.kind) {
      case Kind::kPayload:
        h = l.bytes;
        break;
      case Kind::kTcp: {
        const size_t hlen = l.length > 5 ? static_cast<size_t>(l.length) * 4 : 20;
        h.assign(hlen, 1);  // options, if any: NOP
        put16(h, 0, l.a);
        put16(h, 2, l.b);
        put32(h, 4, 1);
        put32(h, 8, 0);
        h[12] = static_cast<uint8_t>(l.length << 4);
        h[13] = l.flags;
        put16(h, 14, 0xffff);
        put16(h, 16, 0);
        put16(h, 18, 0);
        break;
      }
      case Kind::kUdp:
        h.assign(8, 0);
        put16(h, 0, l.a);
        put16(h, 2, l.b);
        put16(h, 4, static_cast<uint16_t>(l.length >= 0 ? l.length : 8 + inner.size()));
        break;
      case Kind::kIcmp: {
        h.assign(8, 0);
        put16(h, 0, l.type);
        put32(h, 4, l.info);
        Bytes msg = cat({h, inner});
        uint32_t seed = 0;
        if (ip_of[k] != nullptr && ip_of[k]->kind == Kind::kIpv6)
          seed = ipv6_pseudo_sum(ip_of[k]->ip_src, ip_of[k]->ip_dst,
                                 static_cast<uint32_t>(msg.size()), 58);
        put16(h, 2, inet_checksum(msg.data(), msg.size(), seed));
        break;
      }
      case Kind::kExt6: {
        const uint8_t nh =
            static_cast<uint8_t>(l.proto >= 0 ? l.proto : (next ? proto_of(*next, ip_of[k]) : 59));
        h.assign(l.a, 0);
        h[0] = nh;
        if (l.type == 44) {
          put16(h, 2, l.frag);
          put32(h, 4, l.info);
        } else {
          h[1] = static_cast<uint8_t>(l.a / 8 - 1);
          if (l.type == 43) {
            h[2] = 253;  // routing type reserved for experiments; segments left 0
          } else {
            h[2] = 1;  // PadN over the rest
            h[3] = static_cast<uint8_t>(l.a - 4);
          }
        }
        break;
      }
      case Kind::kIpv4: {
        const uint8_t proto =
            static_cast<uint8_t>(l.proto >= 0 ? l.proto : (next ? proto_of(*next, &l) : 255));
        const uint16_t total =
            static_cast<uint16_t>(l.length >= 0 ? l.length : 20 + l.bytes.size() + inner.size());
        h = ipv4_header(l.ip_src, l.ip_dst, proto, 0, l.tos, l.ttl, l.frag, l.b);
        h[0] = static_cast<uint8_t>(0x40 | (5 + l.bytes.size() / 4));
        h.insert(h.end(), l.bytes.begin(), l.bytes.end());
        put16(h, 2, total);
        put16(h, 10, 0);
        put16(h, 10, inet_checksum(h.data(), h.size()));
        break;
      }
      case Kind::kIpv6: {
        const uint8_t nh =
            static_cast<uint8_t>(l.proto >= 0 ? l.proto : (next ? proto_of(*next, &l) : 59));
        const uint16_t plen = static_cast<uint16_t>(l.length >= 0 ? l.length : inner.size());
        h = ipv6_header(l.ip_src, l.ip_dst, nh, plen, l.tos, l.label, l.ttl);
        break;
      }
      case Kind::kVlan:
      case Kind::kEth: {
        uint16_t type = l.proto >= 0 ? static_cast<uint16_t>(l.proto) : 0x88b5;
        if (next && next->kind == Kind::kVlan) type = next->type;
        if (next && next->kind == Kind::kIpv4) type = kEthIpv4;
        if (next && next->kind == Kind::kIpv6) type = kEthIpv6;
        if (l.kind == Kind::kVlan) {
          h.assign(4, 0);
          put16(h, 0, l.a);
          put16(h, 2, type);
        } else {
          h.assign(14, 0);
          std::copy(l.dst.begin(), l.dst.end(), h.begin());
          std::copy(l.src.begin(), l.src.end(), h.begin() + 6);
          put16(h, 12, type);
        }
        break;
      }
    }
    inner = cat({h, inner});
  }
  return inner;
}

Bytes ipv4_header(const IpAddress& src, const IpAddress& dst, uint8_t proto, uint16_t payload_len,
                  uint8_t tos, uint8_t ttl, uint16_t frag_field, uint16_t id) {
  Bytes h(20, 0);
  h[0] = 0x45;
  h[1] = tos;
  put16(h, 2, static_cast<uint16_t>(20 + payload_len));
  put16(h, 4, id);
  put16(h, 6, frag_field);
  h[8] = ttl;
  h[9] = proto;
  std::copy(src.ip.bytes, src.ip.bytes + 4, h.begin() + 12);
  std::copy(dst.ip.bytes, dst.ip.bytes + 4, h.begin() + 16);
  put16(h, 10, inet_checksum(h.data(), h.size()));
  return h;
}

Bytes ipv6_header(const IpAddress& src, const IpAddress& dst, uint8_t nexthdr, uint16_t payload_len,
                  uint8_t tclass, uint32_t flow_label, uint8_t hop_limit) {
  Bytes h(40, 0);
  put32(h, 0, 0x60000000u | static_cast<uint32_t>(tclass) << 20 | (flow_label & 0xfffff));
  put16(h, 4, payload_len);
  h[6] = nexthdr;
  h[7] = hop_limit;
  std::copy(src.ip.bytes, src.ip.bytes + 16, h.begin() + 8);
  std::copy(dst.ip.bytes, dst.ip.bytes + 16, h.begin() + 24);
  return h;
}

Bytes eth_header(const Mac& dst, const Mac& src, const Bytes& like, size_t ntags, uint16_t type) {
  Bytes h = slice(like, 0, 14 + 4 * ntags);
  std::copy(dst.begin(), dst.end(), h.begin());
  std::copy(src.begin(), src.end(), h.begin() + 6);
  put16(h, h.size() - 2, type);
  return h;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Bytes slice(const Bytes& b, size_t from, size_t len) {
  if (from >= b.size()) return {};
  const size_t n = std::min(len, b.size() - from);
  return Bytes(b.begin() + static_cast<std::ptrdiff_t>(from),
               b.begin() + static_cast<std::ptrdiff_t>(from + n));
}

}  // namespace sluice::test
