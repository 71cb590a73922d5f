// SPDX-License-Identifier: BSD-2-Clause
// Text conversion of IpAddress.
#include "dataplane/core/ip_address.hpp"

#include <arpa/inet.h>

#include <cerrno>

namespace sluice {

Result<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton wants a NUL-terminated string; addresses are short.
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof buf) {
    return Error{-EINVAL, "not an IP address: '" + std::string(text) + "'"};
  }
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';

  IpAddress a;
  if (inet_pton(AF_INET, buf, a.ip.bytes) == 1) {
    a.family = SLUICE_FAMILY_IPV4;
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.ip.bytes) == 1) {
    a.family = SLUICE_FAMILY_IPV6;
    return a;
  }
  return Error{-EINVAL, "not an IP address: '" + std::string(text) + "'"};
}

IpAddress IpAddress::v4(uint32_t host_order) {
  IpAddress a;
  a.family = SLUICE_FAMILY_IPV4;
  a.ip.v4 = sl_htonl(host_order);
  return a;
}

IpAddress IpAddress::v6(const uint8_t bytes[16]) {
  IpAddress a;
  a.family = SLUICE_FAMILY_IPV6;
  std::memcpy(a.ip.bytes, bytes, 16);
  return a;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN];
  const char* s = inet_ntop(is_v6() ? AF_INET6 : AF_INET, ip.bytes, buf, sizeof buf);
  return s ? std::string(s) : std::string("?");
}

}  // namespace sluice
