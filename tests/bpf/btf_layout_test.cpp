// SPDX-License-Identifier: BSD-2-Clause
// The layout proof: every sluice struct a map of the built BPF objects
// holds has, in the objects' BTF (what the BPF program was compiled with),
// the size and member offsets the C++ build gives the same header (sizeof /
// offsetof). Reads files only: needs no privilege, never skips.
#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dataplane/abi/cache.h"
#include "dataplane/abi/flow.h"
#include "dataplane/abi/maps.h"
#include "dataplane/abi/stats.h"
#include "xdp/sluice_decap.h"
#include "xdp/sluice_lb.h"

namespace sluice::test {
namespace {

// One member as the C++ compiler lays it out.
struct Member {
  std::string name;
  size_t offset;  // bytes
  size_t size;    // bytes
};

// A struct or union of the ABI as the C++ compiler lays it out.
struct Layout {
  bool is_union;
  size_t size;  // bytes
  std::vector<Member> members;
};

// Member m of T as the compiler lays it out.
#define SLUICE_MEMBER(T, m) \
  Member { #m, offsetof(T, m), sizeof(T::m) }

// The layout of T, named as its BTF names it.
template <class T>
std::pair<const std::string, Layout> layout(const char* name, std::vector<Member> members) {
  return {name, Layout{std::is_union_v<T>, sizeof(T), std::move(members)}};
}

// Every struct the maps hold, by name, from the headers the C++ build
// includes. A member is listed by name; its offset and size come from the
// compiler.
const std::map<std::string, Layout>& cpp_layouts() {
  static const std::map<std::string, Layout> layouts = {
      layout<sluice_ip>("sluice_ip", {SLUICE_MEMBER(sluice_ip, bytes), SLUICE_MEMBER(sluice_ip, v4),
                                      SLUICE_MEMBER(sluice_ip, v6)}),
      layout<sluice_flow_key>(
          "sluice_flow_key",
          {SLUICE_MEMBER(sluice_flow_key, src), SLUICE_MEMBER(sluice_flow_key, dst),
           SLUICE_MEMBER(sluice_flow_key, sport), SLUICE_MEMBER(sluice_flow_key, dport),
           SLUICE_MEMBER(sluice_flow_key, proto), SLUICE_MEMBER(sluice_flow_key, family),
           SLUICE_MEMBER(sluice_flow_key, pad)}),
      layout<sluice_flow_value>("sluice_flow_value", {SLUICE_MEMBER(sluice_flow_value, backend_id),
                                                      SLUICE_MEMBER(sluice_flow_value, last_seen),
                                                      SLUICE_MEMBER(sluice_flow_value, state),
                                                      SLUICE_MEMBER(sluice_flow_value, hash_hi),
                                                      SLUICE_MEMBER(sluice_flow_value, hash_lo)}),
      layout<sluice_vip_key>(
          "sluice_vip_key",
          {SLUICE_MEMBER(sluice_vip_key, addr), SLUICE_MEMBER(sluice_vip_key, port),
           SLUICE_MEMBER(sluice_vip_key, proto), SLUICE_MEMBER(sluice_vip_key, family),
           SLUICE_MEMBER(sluice_vip_key, pad)}),
      layout<sluice_vip_meta>(
          "sluice_vip_meta",
          {SLUICE_MEMBER(sluice_vip_meta, vip_id), SLUICE_MEMBER(sluice_vip_meta, flags),
           SLUICE_MEMBER(sluice_vip_meta, table_size), SLUICE_MEMBER(sluice_vip_meta, pad)}),
      layout<sluice_probation_slot>("sluice_probation_slot",
                                    {SLUICE_MEMBER(sluice_probation_slot, key),
                                     SLUICE_MEMBER(sluice_probation_slot, value)}),
      layout<sluice_vip_slot>(
          "sluice_vip_slot",
          {SLUICE_MEMBER(sluice_vip_slot, addr), SLUICE_MEMBER(sluice_vip_slot, port),
           SLUICE_MEMBER(sluice_vip_slot, proto), SLUICE_MEMBER(sluice_vip_slot, family),
           SLUICE_MEMBER(sluice_vip_slot, flags), SLUICE_MEMBER(sluice_vip_slot, meta)}),
      layout<sluice_backend>(
          "sluice_backend",
          {SLUICE_MEMBER(sluice_backend, addr), SLUICE_MEMBER(sluice_backend, id),
           SLUICE_MEMBER(sluice_backend, family), SLUICE_MEMBER(sluice_backend, flags),
           SLUICE_MEMBER(sluice_backend, pad)}),
      layout<sluice_encap_config>(
          "sluice_encap_config",
          {SLUICE_MEMBER(sluice_encap_config, src_v4), SLUICE_MEMBER(sluice_encap_config, src_v6),
           SLUICE_MEMBER(sluice_encap_config, mtu),
           SLUICE_MEMBER(sluice_encap_config, entropy_bits),
           SLUICE_MEMBER(sluice_encap_config, pad)}),
      layout<sluice_global_stats>("sluice_global_stats",
                                  {SLUICE_MEMBER(sluice_global_stats, rx_packets),
                                   SLUICE_MEMBER(sluice_global_stats, rx_bytes),
                                   SLUICE_MEMBER(sluice_global_stats, tx_packets),
                                   SLUICE_MEMBER(sluice_global_stats, pass_packets),
                                   SLUICE_MEMBER(sluice_global_stats, flow_hits),
                                   SLUICE_MEMBER(sluice_global_stats, flow_misses),
                                   SLUICE_MEMBER(sluice_global_stats, flow_insert_failed),
                                   SLUICE_MEMBER(sluice_global_stats, icmp_too_big_sent),
                                   SLUICE_MEMBER(sluice_global_stats, drops),
                                   SLUICE_MEMBER(sluice_global_stats, frag_unmatched)}),
      layout<sluice_vip_stats>(
          "sluice_vip_stats",
          {SLUICE_MEMBER(sluice_vip_stats, packets), SLUICE_MEMBER(sluice_vip_stats, bytes),
           SLUICE_MEMBER(sluice_vip_stats, new_flows), SLUICE_MEMBER(sluice_vip_stats, drops)}),
      layout<sluice_backend_stats>(
          "sluice_backend_stats",
          {SLUICE_MEMBER(sluice_backend_stats, packets), SLUICE_MEMBER(sluice_backend_stats, bytes),
           SLUICE_MEMBER(sluice_backend_stats, new_flows),
           SLUICE_MEMBER(sluice_backend_stats, pad)}),
      layout<sluice_cache_entry>(
          "sluice_cache_entry",
          {SLUICE_MEMBER(sluice_cache_entry, vip_id), SLUICE_MEMBER(sluice_cache_entry, key_hash),
           SLUICE_MEMBER(sluice_cache_entry, version), SLUICE_MEMBER(sluice_cache_entry, epoch),
           SLUICE_MEMBER(sluice_cache_entry, expires_ns),
           SLUICE_MEMBER(sluice_cache_entry, key_len), SLUICE_MEMBER(sluice_cache_entry, head_len),
           SLUICE_MEMBER(sluice_cache_entry, cas_len), SLUICE_MEMBER(sluice_cache_entry, body_len),
           SLUICE_MEMBER(sluice_cache_entry, sum_get), SLUICE_MEMBER(sluice_cache_entry, sum_gets),
           SLUICE_MEMBER(sluice_cache_entry, pad), SLUICE_MEMBER(sluice_cache_entry, key),
           SLUICE_MEMBER(sluice_cache_entry, cas), SLUICE_MEMBER(sluice_cache_entry, text)}),
      layout<sluice_cache_slot>("sluice_cache_slot", {SLUICE_MEMBER(sluice_cache_slot, version),
                                                      SLUICE_MEMBER(sluice_cache_slot, last_write_ms),
                                                      SLUICE_MEMBER(sluice_cache_slot, entry),
                                                      SLUICE_MEMBER(sluice_cache_slot, pad)}),
      layout<sluice_cache_sketch>("sluice_cache_sketch",
                                  {SLUICE_MEMBER(sluice_cache_sketch, counts)}),
      layout<sluice_cache_scratch>("sluice_cache_scratch",
                                   {SLUICE_MEMBER(sluice_cache_scratch, buf)}),
      layout<sluice_cache_stats>(
          "sluice_cache_stats",
          {SLUICE_MEMBER(sluice_cache_stats, hits), SLUICE_MEMBER(sluice_cache_stats, misses),
           SLUICE_MEMBER(sluice_cache_stats, invalidations),
           SLUICE_MEMBER(sluice_cache_stats, vip_invalidations),
           SLUICE_MEMBER(sluice_cache_stats, hot_reports),
           SLUICE_MEMBER(sluice_cache_stats, bypassed)}),
      layout<sluice_next_hop>("sluice_next_hop", {SLUICE_MEMBER(sluice_next_hop, dst_mac),
                                                  SLUICE_MEMBER(sluice_next_hop, src_mac),
                                                  SLUICE_MEMBER(sluice_next_hop, ifindex)}),
      layout<sluice_backend_hop>("sluice_backend_hop",
                                 {SLUICE_MEMBER(sluice_backend_hop, hop),
                                  SLUICE_MEMBER(sluice_backend_hop, backend_id),
                                  SLUICE_MEMBER(sluice_backend_hop, pad)}),
      layout<sluice_decap_vip>("sluice_decap_vip", {SLUICE_MEMBER(sluice_decap_vip, addr),
                                                    SLUICE_MEMBER(sluice_decap_vip, family),
                                                    SLUICE_MEMBER(sluice_decap_vip, pad)}),
      layout<sluice_decap_stats>("sluice_decap_stats",
                                 {SLUICE_MEMBER(sluice_decap_stats, decap_packets),
                                  SLUICE_MEMBER(sluice_decap_stats, pass_packets),
                                  SLUICE_MEMBER(sluice_decap_stats, ecn_dropped)}),
  };
  return layouts;
}

#undef SLUICE_MEMBER

// The BTF of a built BPF object; its path comes from the environment
// variable meson sets (tests/bpf/meson.build).
class ObjectBtf {
 public:
  explicit ObjectBtf(const char* env) {
    const char* path = std::getenv(env);
    if (path == nullptr) {
      error_ = std::string(env) + " is not set (meson test sets it)";
      return;
    }
    path_ = path;
    errno = 0;
    btf_ = btf__parse(path, nullptr);
    if (btf_ == nullptr) error_ = path_ + ": no BTF (" + std::strerror(errno) + ")";
  }
  ~ObjectBtf() { btf__free(btf_); }
  ObjectBtf(const ObjectBtf&) = delete;
  ObjectBtf& operator=(const ObjectBtf&) = delete;

  [[nodiscard]] const btf* get() const { return btf_; }
  [[nodiscard]] const std::string& error() const { return error_; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  btf* btf_ = nullptr;
  std::string path_;
  std::string error_;
};

const char* name_of(const btf* b, uint32_t name_off) {
  const char* n = btf__name_by_offset(b, name_off);
  return n != nullptr ? n : "";
}

// Follows typedefs and const/volatile/restrict/type-tag modifiers.
uint32_t skip_mods(const btf* b, uint32_t id) {
  for (const btf_type* t = btf__type_by_id(b, id);
       t != nullptr && (btf_is_mod(t) || btf_is_typedef(t)); t = btf__type_by_id(b, id)) {
    id = t->type;
  }
  return id;
}

// Compares the BTF struct/union `id` with its C++ layout. Adds the named
// struct/union members it contains to `nested`.
void expect_same_layout(const btf* b, uint32_t id, std::set<std::string>& nested) {
  const btf_type* t = btf__type_by_id(b, id);
  ASSERT_NE(t, nullptr);
  const std::string name = name_of(b, t->name_off);
  SCOPED_TRACE(name);
  const auto it = cpp_layouts().find(name);
  ASSERT_NE(it, cpp_layouts().end())
      << "a map holds struct/union " << name << ", which this test does not know: add it";
  const Layout& cpp = it->second;

  EXPECT_EQ(btf_is_union(t), cpp.is_union);
  EXPECT_EQ(t->size, cpp.size) << "sizeof differs";
  std::set<std::string> seen;
  const btf_member* m = btf_members(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i, ++m) {
    const std::string member = name_of(b, m->name_off);
    seen.insert(member);
    EXPECT_EQ(btf_member_bitfield_size(t, i), 0u) << member << " is a bitfield";
    const auto c = std::find_if(cpp.members.begin(), cpp.members.end(),
                                [&](const Member& x) { return x.name == member; });
    if (c == cpp.members.end()) {
      ADD_FAILURE() << "BTF member " << member << " is missing from the C++ table";
      continue;
    }
    EXPECT_EQ(btf_member_bit_offset(t, i) % 8, 0u) << member;
    EXPECT_EQ(btf_member_bit_offset(t, i) / 8, c->offset) << "offsetof " << member;
    EXPECT_EQ(btf__resolve_size(b, m->type), static_cast<int64_t>(c->size)) << "sizeof " << member;

    const uint32_t mt = skip_mods(b, m->type);
    const btf_type* inner = btf__type_by_id(b, mt);
    if (inner != nullptr && btf_is_composite(inner)) nested.insert(name_of(b, inner->name_off));
  }
  for (const Member& c : cpp.members) {
    EXPECT_EQ(seen.count(c.name), 1u) << "C++ member " << c.name << " is not in the BTF";
  }
}

// The struct/union types the object's maps hold as key or value (libbpf's
// BTF-defined maps: a .maps variable's `key` and `value` members point to
// them), by BTF id.
std::set<uint32_t> map_held_types(const btf* b) {
  std::set<uint32_t> ids;
  const int sec = btf__find_by_name_kind(b, ".maps", BTF_KIND_DATASEC);
  if (sec < 0) return ids;
  const btf_type* ds = btf__type_by_id(b, static_cast<uint32_t>(sec));
  const btf_var_secinfo* v = btf_var_secinfos(ds);
  for (uint16_t i = 0; i < btf_vlen(ds); ++i, ++v) {
    const btf_type* var = btf__type_by_id(b, v->type);
    const btf_type* def = btf__type_by_id(b, skip_mods(b, var->type));
    if (def == nullptr || !btf_is_struct(def)) continue;
    const btf_member* m = btf_members(def);
    for (uint16_t j = 0; j < btf_vlen(def); ++j, ++m) {
      const std::string field = name_of(b, m->name_off);
      if (field != "key" && field != "value") continue;
      const btf_type* ptr = btf__type_by_id(b, skip_mods(b, m->type));
      if (ptr == nullptr || !btf_is_ptr(ptr)) continue;
      const uint32_t held = skip_mods(b, ptr->type);
      const btf_type* h = btf__type_by_id(b, held);
      if (h != nullptr && btf_is_composite(h)) ids.insert(held);
    }
  }
  return ids;
}

// sluice's own types, named sluice_*: a map may also hold a kernel UAPI
// struct (a devmap's bpf_devmap_val, say), whose layout is the kernel's.
bool is_sluice_type(const std::string& name) { return name.rfind("sluice_", 0) == 0; }

// Checks every sluice struct the object's maps hold, and the sluice structs
// and unions inside them; returns the names checked.
std::set<std::string> check_object(const char* env) {
  ObjectBtf obj(env);
  std::set<std::string> checked;
  if (obj.get() == nullptr) {
    ADD_FAILURE() << obj.error();
    return checked;
  }
  SCOPED_TRACE(obj.path());
  std::set<std::string> pending;
  for (uint32_t id : map_held_types(obj.get())) {
    pending.insert(name_of(obj.get(), btf__type_by_id(obj.get(), id)->name_off));
  }
  while (!pending.empty()) {
    const std::string name = *pending.begin();
    pending.erase(pending.begin());
    if (!is_sluice_type(name) || !checked.insert(name).second) continue;
    int id = btf__find_by_name_kind(obj.get(), name.c_str(), BTF_KIND_STRUCT);
    if (id < 0) id = btf__find_by_name_kind(obj.get(), name.c_str(), BTF_KIND_UNION);
    if (id < 0) {
      ADD_FAILURE() << name << " not found in the BTF";
      continue;
    }
    std::set<std::string> nested;
    expect_same_layout(obj.get(), static_cast<uint32_t>(id), nested);
    pending.insert(nested.begin(), nested.end());
  }
  return checked;
}

TEST(BtfLayout, LoadBalancerMapsMatchTheCppLayout) {
  const std::set<std::string> checked = check_object("SLUICE_LB_BPF_OBJ");
  // The walk must have found the ABI's map structs, not an empty section.
  for (const char* name :
       {"sluice_flow_key", "sluice_flow_value", "sluice_vip_key", "sluice_vip_meta",
        "sluice_vip_slot", "sluice_probation_slot", "sluice_backend", "sluice_encap_config", "sluice_global_stats", "sluice_vip_stats",
        "sluice_backend_stats", "sluice_next_hop", "sluice_ip", "sluice_backend_hop"}) {
    EXPECT_EQ(checked.count(name), 1u) << name << " is held by no map of sluice_lb";
  }
}

TEST(BtfLayout, DecapsulatorMapsMatchTheCppLayout) {
  const std::set<std::string> checked = check_object("SLUICE_DECAP_BPF_OBJ");
  for (const char* name : {"sluice_decap_vip", "sluice_decap_stats", "sluice_ip"}) {
    EXPECT_EQ(checked.count(name), 1u) << name << " is held by no map of sluice_decap";
  }
}

}  // namespace
}  // namespace sluice::test
