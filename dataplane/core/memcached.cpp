// SPDX-License-Identifier: BSD-2-Clause
// The memcached ASCII request parser, UDP frame header and VALUE response
// builder of memcached.hpp.
#include "dataplane/core/memcached.hpp"

#include <cerrno>
#include <cstring>
#include <initializer_list>

#include "dataplane/abi/csum.h"

namespace sluice::mc {
namespace {

// memcached's binary protocol starts every request with this magic byte.
constexpr uint8_t kBinaryMagic = 0x80;

// Spaces separate tokens (memcached's tokenize_command); runs of them count
// as one.
class Tokens {
 public:
  explicit Tokens(std::string_view line) : rest_(line) {}

  // The next token, or empty at the end of the line.
  std::string_view next() {
    while (!rest_.empty() && rest_.front() == ' ') rest_.remove_prefix(1);
    size_t n = 0;
    while (n < rest_.size() && rest_[n] != ' ') ++n;
    std::string_view t = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return t;
  }

  // Whether a token ends before the end of the line (a space follows it).
  [[nodiscard]] bool more() const { return !rest_.empty(); }

 private:
  std::string_view rest_;
};

// Digits only, no sign, at most `max`.
bool parse_unsigned(std::string_view t, uint64_t max, uint64_t* out) {
  if (t.empty() || t.size() > 20) return false;
  uint64_t v = 0;
  for (char c : t) {
    if (c < '0' || c > '9') return false;
    const auto d = static_cast<uint64_t>(c - '0');
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

// An exptime: optional '-', then digits, within 32 bits signed.
bool valid_exptime(std::string_view t) {
  uint64_t v = 0;
  if (!t.empty() && t.front() == '-') t.remove_prefix(1);
  return parse_unsigned(t, 0x7fffffffu, &v);
}

bool is_storage(std::string_view c) {
  return c == "set" || c == "add" || c == "replace" || c == "append" || c == "prepend" ||
         c == "cas";
}

bool is_keyed_write(std::string_view c) {
  return c == "incr" || c == "decr" || c == "touch" || c == "delete";
}

bool is_plain_read(std::string_view c) {
  return c == "version" || c == "stats" || c == "verbosity" || c == "quit" || c == "mn" ||
         c == "me";
}

std::string_view as_chars(std::span<const uint8_t> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

Request unsure() { return Request{}; }

// Cut short by the end of the buffer; `key` empty when not known.
Request unsure_with_key(std::string_view key) {
  Request r;
  r.key = key;
  r.incomplete = true;
  return r;
}

Request with_kind(Kind kind, std::string_view key, size_t length) {
  Request r;
  r.kind = kind;
  r.key = key;
  r.length = static_cast<uint32_t>(length);
  return r;
}

// A line with no "\n" yet: all that can be known is the key of a write
// command whose key token is complete (a space follows it).
Request parse_partial(std::string_view text) {
  Tokens t(text);
  const std::string_view cmd = t.next();
  std::string_view key;
  if (t.more() && (is_storage(cmd) || is_keyed_write(cmd))) {
    key = t.next();
    if (!t.more() || !valid_key(key)) key = {};
  }
  return unsure_with_key(key);
}

// A storage command's line (after the command) and its data block;
// `line_end` is the offset of the byte after the line's "\n".
Request parse_storage(std::string_view cmd, Tokens& t, std::span<const uint8_t> bytes,
                      size_t line_end) {
  const std::string_view key = t.next();
  if (!valid_key(key)) return unsure();
  uint64_t flags = 0;
  uint64_t nbytes = 0;
  uint64_t cas = 0;
  if (!parse_unsigned(t.next(), 0xffffffffu, &flags)) return unsure();
  if (!valid_exptime(t.next())) return unsure();
  // memcached refuses a length over INT_MAX - 2 (it adds the CRLF).
  if (!parse_unsigned(t.next(), 0x7ffffffdu, &nbytes)) return unsure();
  if (cmd == "cas" && !parse_unsigned(t.next(), ~uint64_t{0}, &cas)) return unsure();
  // An optional "noreply" and nothing else: any other shape memcached
  // answers with an error without reading the data block, which it then
  // takes for commands; that is beyond following.
  const std::string_view last = t.next();
  if (!last.empty() && last != "noreply") return unsure();
  if (!t.next().empty()) return unsure();

  const uint64_t total = line_end + nbytes + 2;
  if (total > bytes.size()) return unsure_with_key(key);
  if (bytes[total - 2] != '\r' || bytes[total - 1] != '\n') {
    Request r = unsure();
    r.key = key;
    return r;
  }
  return with_kind(Kind::kWrite, key, total);
}

// get/gets/gat/gats: one valid key is a cacheable get (or a touching
// write); several are a read (or, touching, beyond one key: unsure).
Request parse_retrieval(std::string_view cmd, Tokens& t, size_t line_end) {
  const bool touching = cmd == "gat" || cmd == "gats";
  if (touching && !valid_exptime(t.next())) return unsure();
  const std::string_view first = t.next();
  const bool single = t.next().empty();
  if (touching) {
    if (!single || !valid_key(first)) return unsure();
    return with_kind(Kind::kWrite, first, line_end);
  }
  if (single && valid_key(first)) {
    Request r = with_kind(Kind::kGet, first, line_end);
    r.gets = cmd == "gets";
    return r;
  }
  // No key, a bad key or several: memcached answers an error or several
  // values; nothing changes.
  return with_kind(Kind::kRead, {}, line_end);
}

// mg (meta get) changes nothing unless a flag asks it to: N vivifies a
// missing key, T and E change TTL and cas, I invalidates.
Request parse_meta_get(Tokens& t, size_t line_end) {
  if (t.next().empty()) return unsure();
  for (std::string_view f = t.next(); !f.empty(); f = t.next())
    if (f.front() == 'N' || f.front() == 'T' || f.front() == 'E' || f.front() == 'I')
      return unsure();
  return with_kind(Kind::kRead, {}, line_end);
}

}  // namespace

bool valid_key(std::string_view key) noexcept {
  if (key.empty() || key.size() > SLUICE_CACHE_KEY_MAX) return false;
  for (char c : key) {
    const auto b = static_cast<uint8_t>(c);
    if (b <= 0x20 || b == 0x7f) return false;
  }
  return true;
}

Request parse_request(std::span<const uint8_t> bytes) noexcept {
  if (bytes.empty()) return unsure_with_key({});
  if (bytes[0] == kBinaryMagic) return unsure();
  const std::string_view text = as_chars(bytes);
  const size_t nl = text.find('\n');
  if (nl == std::string_view::npos) return parse_partial(text);
  const size_t line_end = nl + 1;
  std::string_view line = text.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

  Tokens t(line);
  const std::string_view cmd = t.next();
  // Retrievals first: the cache's hot path is a get (the command sets are
  // disjoint, so the order changes no answer).
  if (cmd == "get" || cmd == "gets" || cmd == "gat" || cmd == "gats")
    return parse_retrieval(cmd, t, line_end);
  if (is_storage(cmd)) return parse_storage(cmd, t, bytes, line_end);
  if (is_keyed_write(cmd)) {
    const std::string_view key = t.next();
    // Any further tokens only change how memcached answers: the key is
    // all this request can write.
    if (!valid_key(key)) return unsure();
    return with_kind(Kind::kWrite, key, line_end);
  }
  if (cmd == "flush_all") return with_kind(Kind::kFlush, {}, line_end);
  if (cmd == "mg") return parse_meta_get(t, line_end);
  if (is_plain_read(cmd)) return with_kind(Kind::kRead, {}, line_end);
  return unsure();
}

Writes scan_writes(std::span<const uint8_t> payload,
                   std::span<std::string_view> keys_out) noexcept {
  Writes w;
  auto add = [&](std::string_view key) {
    if (w.keys == keys_out.size()) {
      w.whole_vip = true;
      return false;
    }
    keys_out[w.keys++] = key;
    return true;
  };
  size_t off = 0;
  while (off < payload.size()) {
    const Request r = parse_request(payload.subspan(off));
    switch (r.kind) {
      case Kind::kGet:
      case Kind::kRead:
        break;
      case Kind::kWrite:
        if (!add(r.key)) return w;
        break;
      case Kind::kFlush:
        w.whole_vip = true;
        return w;
      case Kind::kUnsure:
        if (!r.incomplete || r.key.empty())
          w.whole_vip = true;
        else
          add(r.key);
        return w;
    }
    off += r.length;
  }
  return w;
}

std::optional<UdpHeader> parse_udp_header(std::span<const uint8_t> payload) noexcept {
  if (payload.size() < SLUICE_MC_UDP_HDR_LEN) return std::nullopt;
  auto be16 = [&](size_t i) { return static_cast<uint16_t>(payload[i] << 8 | payload[i + 1]); };
  return UdpHeader{be16(0), be16(2), be16(4), be16(6)};
}

std::optional<std::string_view> routing_key(std::span<const uint8_t> payload) noexcept {
  if (payload.size() < SLUICE_MC_UDP_HDR_LEN) return std::nullopt;
  const std::span<const uint8_t> body = payload.subspan(SLUICE_MC_UDP_HDR_LEN);
  const Request r = parse_request(body);
  if ((r.kind != Kind::kGet && r.kind != Kind::kWrite) || r.length != body.size())
    return std::nullopt;
  return r.key;
}

namespace {

// Appends to a bounded buffer; `ok` goes false (and stays) once it is full.
class Writer {
 public:
  explicit Writer(std::span<uint8_t> out) : out_(out) {}

  void bytes(const void* p, size_t n) {
    if (!ok_ || n > out_.size() - len_) {
      ok_ = false;
      return;
    }
    if (n != 0) std::memcpy(out_.data() + len_, p, n);
    len_ += n;
  }
  void text(std::string_view s) { bytes(s.data(), s.size()); }
  void decimal(uint64_t v) {
    char digits[20];
    size_t n = 0;
    do {
      digits[sizeof digits - 1 - n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    bytes(digits + sizeof digits - n, n);
  }

  [[nodiscard]] size_t length() const { return ok_ ? len_ : 0; }

 private:
  std::span<uint8_t> out_;
  size_t len_ = 0;
  bool ok_ = true;
};

void write_head(Writer& w, std::string_view key, const Value& v) {
  w.text("VALUE ");
  w.text(key);
  w.text(" ");
  w.decimal(v.flags);
  w.text(" ");
  w.decimal(v.data.size());
}

void write_body(Writer& w, const Value& v) {
  w.text("\r\n");
  w.bytes(v.data.data(), v.data.size());
  w.text("\r\nEND\r\n");
}

}  // namespace

size_t build_value_response(std::span<uint8_t> out, std::string_view key, const Value& value,
                            bool with_cas) noexcept {
  if (key.empty() || key.size() > SLUICE_CACHE_KEY_MAX) return 0;
  Writer w(out);
  write_head(w, key, value);
  if (with_cas) {
    w.text(" ");
    w.decimal(value.cas);
  }
  write_body(w, value);
  return w.length();
}

size_t build_udp_response(std::span<uint8_t> out, uint16_t request_id, std::string_view key,
                          const Value& value, bool with_cas) noexcept {
  if (out.size() < SLUICE_MC_UDP_HDR_LEN) return 0;
  const uint8_t header[SLUICE_MC_UDP_HDR_LEN] = {
      static_cast<uint8_t>(request_id >> 8), static_cast<uint8_t>(request_id), 0, 0, 0, 1, 0, 0};
  const size_t n = build_value_response(out.subspan(SLUICE_MC_UDP_HDR_LEN), key, value, with_cas);
  if (n == 0) return 0;
  std::memcpy(out.data(), header, sizeof header);
  return SLUICE_MC_UDP_HDR_LEN + n;
}

namespace {

// Folded sum of `parts` as one byte string starting at an even offset.
uint16_t sum_of(std::initializer_list<std::span<const uint8_t>> parts) {
  uint64_t sum = 0;
  size_t at = 0;
  for (const std::span<const uint8_t> p : parts) {
    uint64_t s = sluice_csum_add_bytes(0, p.data(), static_cast<sl_u32>(p.size()),
                                       static_cast<sl_u32>(p.size()));
    // A part starting at an odd offset has its bytes in the other halves
    // of words, which swaps the bytes of its folded sum (RFC 1071 section 2(B)).
    if (at % 2 != 0) s = __builtin_bswap16(sluice_csum_fold(s));
    sum += s;
    at += p.size();
  }
  return sluice_csum_fold(sum);
}

}  // namespace

int fill_entry(sluice_cache_entry& e, uint32_t vip_id, std::string_view key, const Value& value,
               uint32_t version, uint32_t epoch, uint64_t expires_ms) noexcept {
  if (!valid_key(key)) return -EINVAL;
  if (value.data.size() > SLUICE_CACHE_VALUE_MAX) return -E2BIG;
  e = sluice_cache_entry{};
  e.vip_id = vip_id;
  e.key_hash = key_hash(key);
  e.version = version;
  e.epoch = epoch;
  constexpr uint64_t kNsPerMs = 1'000'000;
  e.expires_ns = expires_ms > ~uint64_t{0} / kNsPerMs ? ~uint64_t{0} : expires_ms * kNsPerMs;
  e.key_len = static_cast<uint16_t>(key.size());
  std::memcpy(e.key, key.data(), key.size());

  Writer text(e.text);
  write_head(text, key, value);
  const size_t head_len = text.length();
  write_body(text, value);
  Writer cas(e.cas);
  cas.text(" ");
  cas.decimal(value.cas);
  // The limits above keep all three inside their arrays.
  e.head_len = static_cast<uint16_t>(head_len);
  e.body_len = static_cast<uint16_t>(text.length() - head_len);
  e.cas_len = static_cast<uint16_t>(cas.length());

  const std::span<const uint8_t> head(e.text, e.head_len), body(e.text + e.head_len, e.body_len);
  e.sum_get = sum_of({head, body});
  e.sum_gets = sum_of({head, {e.cas, e.cas_len}, body});
  return 0;
}

size_t entry_response(std::span<uint8_t> out, const sluice_cache_entry& e, bool with_cas) noexcept {
  Writer w(out);
  w.bytes(e.text, e.head_len);
  if (with_cas) w.bytes(e.cas, e.cas_len);
  w.bytes(e.text + e.head_len, e.body_len);
  return w.length();
}

ParsedValue parse_value_response(std::span<const uint8_t> bytes, std::string_view key) noexcept {
  ParsedValue r;
  const std::string_view text = as_chars(bytes);
  const size_t nl = text.find("\r\n");
  if (nl == std::string_view::npos) {
    // A line not yet ended may still become a valid one.
    const std::string_view want = text.size() < 6
                                      ? std::string_view("VALUE ").substr(0, text.size())
                                      : std::string_view("VALUE ");
    if (text.substr(0, want.size()) == want ||
        std::string_view("END").substr(0, text.size()) == text)
      r.status = ParsedValue::Status::kIncomplete;
    return r;
  }
  const std::string_view line = text.substr(0, nl);
  if (line == "END") {
    r.status = ParsedValue::Status::kMiss;
    r.length = nl + 2;
    return r;
  }
  Tokens t(line);
  uint64_t flags = 0, nbytes = 0, cas = 0;
  if (t.next() != "VALUE" || t.next() != key) return r;
  if (!parse_unsigned(t.next(), 0xffffffffu, &flags)) return r;
  if (!parse_unsigned(t.next(), 0x7ffffffdu, &nbytes)) return r;
  const std::string_view cas_token = t.next();
  if (!cas_token.empty() && !parse_unsigned(cas_token, ~uint64_t{0}, &cas)) return r;
  if (!t.next().empty()) return r;
  const uint64_t data_at = nl + 2;
  const uint64_t total = data_at + nbytes + 2 + 5;  // data, CRLF, "END\r\n"
  if (total > bytes.size()) {
    r.status = ParsedValue::Status::kIncomplete;
    return r;
  }
  if (text.substr(data_at + nbytes, 7) != "\r\nEND\r\n") return r;
  r.status = ParsedValue::Status::kHit;
  r.value = Value{static_cast<uint32_t>(flags), cas, bytes.subspan(data_at, nbytes)};
  r.length = total;
  return r;
}

}  // namespace sluice::mc
