// SPDX-License-Identifier: BSD-2-Clause
// The memcached ASCII protocol as the hot-object cache needs it: what a
// request reads or writes, the UDP frame header, and the exact bytes of a
// VALUE response (memcached doc/protocol.txt is the source; there is no RFC).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

#include "dataplane/abi/cache.h"

namespace sluice::mc {

/// What one request does to cached values.
enum class Kind : uint8_t {
  kGet,     ///< `get`/`gets` of exactly one key: answerable from the cache
  kRead,    ///< changes no value: multi-key get/gets, version, stats, verbosity, quit, mg, mn, me
  kWrite,   ///< changes `key`: set add replace append prepend cas incr decr touch delete,
            ///< and gat/gats (they touch) of one key
  kFlush,   ///< flush_all: changes every key
  kUnsure,  ///< cannot tell what it changes: the caller invalidates conservatively
};

/// One request at the start of a buffer, as parse_request() reads it.
struct Request {
  Kind kind = Kind::kUnsure;
  /// kGet: the command was `gets` (the response carries the cas unique).
  bool gets = false;
  /// The key: kGet and kWrite always; kUnsure when a write command's key
  /// was read but the rest of the request is not in the buffer
  /// (`incomplete`). A view into the parsed bytes, 1..SLUICE_CACHE_KEY_MAX.
  std::string_view key;
  /// The request runs past the end of the buffer (no line end yet, or a
  /// data block cut short); always kUnsure.
  bool incomplete = false;
  /// Bytes the whole request takes (its line with the line end, and for a
  /// storage command its data block and the CRLF after it); 0 for kUnsure.
  uint32_t length = 0;
};

/// Reads the request at the start of `bytes` (a TCP payload, or a UDP
/// payload after its frame header), by memcached's own rules: a line ends
/// at "\n", a "\r" before it is dropped; tokens are separated by one or
/// more spaces; commands are lower case; a key is 1..250 bytes with no
/// control character (< 0x21) or DEL; a storage command's data block is
/// the <bytes> bytes after its line, then "\r\n".
///
/// Never reads outside `bytes`, never allocates. Anything it cannot
/// classify with certainty -- an unknown command, the binary protocol
/// (first byte 0x80), a key that is too long or holds control bytes, a
/// number that does not parse or overflows 32 bits, a data block not ended
/// by "\r\n", a meta write (ms, md, ma: flags may encode the key) -- is
/// kUnsure. Cost: O(line length).
[[nodiscard]] Request parse_request(std::span<const uint8_t> bytes) noexcept;

/// The writes in a run of requests (a TCP segment's payload, a UDP
/// datagram's after its frame header), from scan_writes().
struct Writes {
  /// Keys written, in `keys_out[0, keys)`, in request order (repeats kept).
  uint32_t keys = 0;
  /// Invalidate the VIP's whole cache: flush_all, a request that could not
  /// be followed, or more written keys than `keys_out` holds.
  bool whole_vip = false;
};

/// Follows the requests in `payload` one after another and collects the
/// keys they write. A request cut short by the end of the payload whose
/// key is known contributes that key (the rest of it arrives later and is
/// judged with its own segment); one whose key is not known, or anything
/// kUnsure before the end, sets whole_vip and stops. An empty payload
/// writes nothing. Never allocates; O(payload bytes).
[[nodiscard]] Writes scan_writes(std::span<const uint8_t> payload,
                                 std::span<std::string_view> keys_out) noexcept;

/// memcached's UDP frame header (doc/protocol.txt "UDP protocol"), host order.
struct UdpHeader {
  uint16_t request_id = 0;  ///< chosen by the client, echoed in every response datagram
  uint16_t sequence = 0;    ///< datagram number within the message, from 0
  uint16_t total = 0;       ///< datagrams in the message
  uint16_t reserved = 0;    ///< 0
};

/// Reads the first SLUICE_MC_UDP_HDR_LEN bytes of a UDP payload; nullopt
/// when there are fewer.
[[nodiscard]] std::optional<UdpHeader> parse_udp_header(std::span<const uint8_t> payload) noexcept;

/// Whether a UDP request can be answered from the cache at all: one
/// datagram (sequence 0, total 1, reserved 0) holding exactly one
/// single-key get or gets. Returns that request (kind kGet), else nullopt.
/// Inline: the fast path's caller then reads the key straight from the
/// parse, not from a returned copy (a copy of the Request through memory
/// stalled on store forwarding: 4% of a hit's samples).
[[nodiscard]] inline std::optional<Request> cacheable_udp_get(
    std::span<const uint8_t> payload) noexcept {
  // Sequence 0, total 1, reserved 0 (network order), compared in place:
  // a UdpHeader returned through memory stalls its reader (its narrow
  // stores do not forward to the wide loads that read it back).
  static constexpr uint8_t kOneDatagram[SLUICE_MC_UDP_HDR_LEN - 2] = {0, 0, 0, 1, 0, 0};
  if (payload.size() < SLUICE_MC_UDP_HDR_LEN ||
      std::memcmp(payload.data() + 2, kOneDatagram, sizeof kOneDatagram) != 0)
    return std::nullopt;
  const std::span<const uint8_t> body = payload.subspan(SLUICE_MC_UDP_HDR_LEN);
  const Request r = parse_request(body);
  if (r.kind != Kind::kGet || r.length != body.size()) return std::nullopt;
  return r;
}

/// The key a UDP request to a VIP with `hash = "key"` is placed by
/// (key-affinity routing, DESIGN.md "Hot-object cache"): the request after
/// the frame header, when it is one single-key get/gets or one write of a
/// key (Kind kGet or kWrite) and fills the datagram. nullopt otherwise --
/// multi-key gets, version, stats, flush_all, pipelines, anything kUnsure,
/// a payload shorter than the frame header -- and such a request is placed
/// by its flow hash. The XDP path follows a subset of the commands (not
/// gat/gats): what it cannot follow it places by the flow hash too.
/// Returns a view into `payload`. Never allocates.
[[nodiscard]] std::optional<std::string_view> routing_key(
    std::span<const uint8_t> payload) noexcept;

/// A value as memcached stores it.
struct Value {
  uint32_t flags = 0;             ///< client flags, 32 bits (memcached >= 1.2.1)
  uint64_t cas = 0;               ///< cas unique, sent by gets
  std::span<const uint8_t> data;  ///< the data block, bytes
};

/// Writes "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\nEND\r\n" -- the
/// cas only when `with_cas` (a gets) -- into `out`, byte for byte what
/// memcached sends for a one-key get/gets hit. Returns the bytes written,
/// or 0 (nothing meaningful written) when `out` is too small or the key is
/// not 1..SLUICE_CACHE_KEY_MAX bytes.
[[nodiscard]] size_t build_value_response(std::span<uint8_t> out, std::string_view key,
                                          const Value& value, bool with_cas) noexcept;

/// Writes a whole UDP response payload: the frame header (the request's id
/// echoed, sequence 0, total 1, reserved 0) and build_value_response().
/// Returns the bytes written, or 0 as build_value_response.
[[nodiscard]] size_t build_udp_response(std::span<uint8_t> out, uint16_t request_id,
                                        std::string_view key, const Value& value,
                                        bool with_cas) noexcept;

/// Fills `e` (the layout a fast path answers from, dataplane/abi/cache.h)
/// for `key` of VIP `vip_id`: head "VALUE <key> <flags> <bytes>", cas
/// text " <cas>", body "\r\n<data>\r\nEND\r\n", and the one's-complement
/// sums of the get and gets responses as they sit after the UDP frame
/// header. `version` and `epoch` are stored as given, `expires_ms`
/// (CLOCK_MONOTONIC_COARSE, ms) as expires_ns (saturating).
/// Returns 0, -EINVAL (key not 1..250 bytes or with a byte memcached
/// refuses in a key), or -E2BIG (data over SLUICE_CACHE_VALUE_MAX bytes).
[[nodiscard]] int fill_entry(sluice_cache_entry& e, uint32_t vip_id, std::string_view key,
                             const Value& value, uint32_t version, uint32_t epoch,
                             uint64_t expires_ms) noexcept;

/// Writes the response an entry answers with -- what build_value_response
/// gives for the same key and value -- into `out`. Returns bytes, or 0
/// when `out` is too small.
[[nodiscard]] size_t entry_response(std::span<uint8_t> out, const sluice_cache_entry& e,
                                    bool with_cas) noexcept;

/// What a one-key get/gets response says (parse_value_response).
struct ParsedValue {
  enum class Status : uint8_t {
    kHit,         ///< one VALUE for the key, then END
    kMiss,        ///< END alone
    kIncomplete,  ///< a prefix of a valid response: read more
    kBad,         ///< anything else (an error line, another key, bad framing)
  };
  Status status = Status::kBad;
  Value value;        ///< kHit: flags, cas (0 without one), data (a view into the bytes)
  size_t length = 0;  ///< kHit, kMiss: bytes of the response
};

/// Reads memcached's answer to "get <key>" or "gets <key>" at the start of
/// `bytes` (doc/protocol.txt, "Retrieval command"). Never allocates.
[[nodiscard]] ParsedValue parse_value_response(std::span<const uint8_t> bytes,
                                               std::string_view key) noexcept;

/// Whether `key` is a key memcached accepts in the ASCII protocol.
[[nodiscard]] bool valid_key(std::string_view key) noexcept;

/// The key hash every fast path uses (sluice_cache_key_hash, seed 0).
[[nodiscard]] inline uint32_t key_hash(std::string_view key) noexcept {
  return sluice_cache_key_hash(reinterpret_cast<const sl_u8*>(key.data()),
                               static_cast<sl_u32>(key.size()), 0);
}

/// The hash a request routed by `key` is placed by: the VIP's Maglev
/// table[route_hash % M] (sluice_key_route_hash; `seed` is the config's
/// hash_seed, as for the flow hash). The same in every fast path and in
/// the control plane, which fetches a hot key from this owner.
[[nodiscard]] inline uint32_t route_hash(std::string_view key, uint32_t seed) noexcept {
  return sluice_key_route_hash(key_hash(key), seed);
}

}  // namespace sluice::mc
