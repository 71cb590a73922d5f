// SPDX-License-Identifier: BSD-2-Clause
// Balancer tests over a fake fast path: stable ids (never reused in a
// slot), drain keeps flows (DRAINING), health and panic mode, no-backend
// tables, entries moved, atomic reload and publication, restart recovery.
#include "control/balancer.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "dataplane/core/memcached.hpp"
#include "tests/unit/fake_fastpath.hpp"

namespace sluice::test {
namespace {

using control::BackendWeight;
using control::Balancer;
using control::Health;

constexpr uint32_t kM = 251;

IpAddress ip(const char* t) { return IpAddress::parse(t).value(); }

// A config with one VIP "web" of `n` backends 10.0.0.1.. (weight 100), a
// tcp health check "hc", table size 251.
std::string web_config(int n, const std::string& extra = "") {
  std::string t = R"(
[xdp]
interfaces = ["veth0"]
encap_source_v4 = "192.0.2.10"
encap_source_v6 = "2001:db8::10"
[health_checks.hc]
type = "tcp"
[[vips]]
name = "web"
address = "198.51.100.1"
port = 80
table_size = 251
)";
  for (int i = 1; i <= n; ++i)
    t += "[[vips.backends]]\naddress = \"10.0.0." + std::to_string(i) +
         "\"\nhealth_check = \"hc\"\n";
  return t + extra;
}

Config config_of(const std::string& toml) {
  ConfigReport r = parse_config(toml, "t.toml");
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors[0].to_string());
  return *r.config;
}

std::vector<control::BackendView> list(const Balancer& b, std::string_view vip);

struct Fixture {
  std::shared_ptr<FakeHeld> held = std::make_shared<FakeHeld>();
  std::optional<Balancer> b;

  explicit Fixture(const std::string& toml, std::shared_ptr<FakeHeld> h = nullptr) {
    if (h) held = std::move(h);
    std::vector<std::unique_ptr<control::Fastpath>> fps;
    fps.push_back(std::make_unique<FakeFastpath>(held));
    auto r = Balancer::create(config_of(toml), std::move(fps));
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    b.emplace(std::move(r.value()));
  }
  Balancer& operator*() { return *b; }
  Balancer* operator->() { return &*b; }

  control::BackendView backend(const char* addr) {
    for (const auto& v : list(*b, "web"))
      if (v.addr == ip(addr)) return v;
    ADD_FAILURE() << "no backend " << addr;
    return {};
  }
  uint32_t id(const char* addr) { return backend(addr).id; }
  // Entries of the held table of "web" naming `id`.
  uint32_t entries(uint32_t bid) {
    const auto* v = held->vip(b->vips()[0].vip_id);
    if (v == nullptr) return 0;
    return static_cast<uint32_t>(std::count(v->table.begin(), v->table.end(), bid));
  }
};

// The backends of a VIP (by value: a range-for over a temporary Result's
// value() would dangle).
std::vector<control::BackendView> list(const Balancer& b, std::string_view vip = {}) {
  auto r = b.backends(vip);
  EXPECT_TRUE(r.ok());
  return r.ok() ? r.value() : std::vector<control::BackendView>{};
}

control::PublishReport publish(Balancer& b) {
  auto r = b.publish();
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? r.value() : control::PublishReport{};
}

TEST(Balancer, FirstPublishSpreadsTheTableOverEveryBackend) {
  Fixture f(web_config(3));
  const auto r = publish(*f);
  EXPECT_TRUE(r.changed);
  ASSERT_EQ(f.held->vips.size(), 1u);
  const auto& v = f.held->vips[0];
  EXPECT_EQ(v.table.size(), kM);
  EXPECT_EQ(v.meta.flags & SLUICE_VIP_PANIC, 0u);
  EXPECT_EQ(v.key.port, sl_htons(80));
  EXPECT_EQ(v.key.proto, SLUICE_IPPROTO_TCP);
  ASSERT_EQ(f.held->backends.size(), 3u);
  uint32_t sum = 0;
  for (const char* a : {"10.0.0.1", "10.0.0.2", "10.0.0.3"}) {
    const auto bv = f.backend(a);
    EXPECT_GE(bv.id, uint32_t{SLUICE_MAX_BACKENDS}) << "ids below the slot count are never given";
    EXPECT_EQ(bv.health, Health::kUp);
    EXPECT_EQ(bv.effective_weight, 100u);
    EXPECT_EQ(bv.table_entries, f.entries(bv.id));
    EXPECT_NEAR(bv.table_entries, kM / 3.0, 1.0);
    sum += bv.table_entries;
  }
  EXPECT_EQ(sum, kM);
  EXPECT_EQ(f->generation(), 2u);
}

// Key-affinity routing: the owner of a key is the published table's entry
// at its route hash, the backend the fast path sends the key's requests to.
TEST(Balancer, OwnerOfAKeyIsThePublishedTablesChoice) {
  const std::string toml = R"(
hash_seed = 77
[[vips]]
name = "mc"
address = "198.51.100.2"
port = 11211
protocol = "udp"
hash = "key"
cache = true
table_size = 251
[[vips.backends]]
address = "10.0.1.1"
[[vips.backends]]
address = "10.0.1.2"
[[vips.backends]]
address = "10.0.1.3"
)";
  Fixture f(toml);
  EXPECT_EQ(f->owner("mc", 1).error().code, -ENOENT) << "nothing published yet";
  publish(*f);
  ASSERT_EQ(f.held->vips.size(), 1u);
  const auto& v = f.held->vips[0];
  EXPECT_EQ(v.meta.flags & (SLUICE_VIP_KEY_HASH | SLUICE_VIP_CACHE),
            SLUICE_VIP_KEY_HASH | SLUICE_VIP_CACHE);
  std::map<uint32_t, IpAddress> by_id;
  for (const auto& b : list(*f, "mc")) by_id[b.id] = b.addr;
  std::set<std::string> seen;
  for (int i = 0; i < 300; ++i) {
    const std::string key = std::to_string(i) + "k";
    const uint32_t h = mc::route_hash(key, 77);
    auto o = f->owner("mc", h);
    ASSERT_TRUE(o.ok());
    EXPECT_EQ(o.value(), by_id.at(v.table[h % v.table.size()])) << key;
    seen.insert(o.value().to_string());
  }
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_EQ(f->owner("nope", 1).error().code, -ENOENT);
}

TEST(Balancer, PublishingNothingNewWritesNothing) {
  Fixture f(web_config(2));
  publish(*f);
  const auto r = publish(*f);
  EXPECT_FALSE(r.changed);
  EXPECT_TRUE(r.vips.empty());
  EXPECT_EQ(f.held->publishes, 1);
  EXPECT_EQ(f->generation(), 2u);
}

TEST(Balancer, IdsStayWhileOthersComeAndGo) {
  Fixture f(web_config(3));
  publish(*f);
  const uint32_t id1 = f.id("10.0.0.1");
  const uint32_t id3 = f.id("10.0.0.3");
  ASSERT_TRUE(f->remove_backend("web", ip("10.0.0.2")).ok());
  ASSERT_TRUE(f->add_backend("web", BackendConfig{ip("10.0.0.9"), 100, {}, ""}).ok());
  publish(*f);
  EXPECT_EQ(f.id("10.0.0.1"), id1);
  EXPECT_EQ(f.id("10.0.0.3"), id3);
  // A reload of the original file keeps them too (by address).
  ASSERT_TRUE(f->reload(config_of(web_config(3))).ok());
  EXPECT_EQ(f.id("10.0.0.1"), id1);
  EXPECT_EQ(f.id("10.0.0.3"), id3);
}

TEST(Balancer, ANewIdNeverRepeatsAnIdItsSlotHeld) {
  Fixture f(web_config(1));
  publish(*f);
  std::set<uint32_t> seen{f.id("10.0.0.1")};
  std::set<uint32_t> slots;
  // Cycle many backends through add/remove: slots get reused, ids never.
  for (int i = 0; i < 3 * SLUICE_MAX_BACKENDS / 2; ++i) {
    const IpAddress a = IpAddress::v4(0x0a010000u + static_cast<uint32_t>(i));
    ASSERT_TRUE(f->add_backend("web", BackendConfig{a, 100, {}, ""}).ok());
    publish(*f);
    uint32_t id = 0;
    for (const auto& v : list(*f, "web"))
      if (v.addr == a) id = v.id;
    EXPECT_TRUE(seen.insert(id).second) << "id " << id << " given twice";
    slots.insert(id & (SLUICE_MAX_BACKENDS - 1));
    ASSERT_TRUE(f->remove_backend("web", a).ok());
    publish(*f);
  }
  EXPECT_EQ(slots.size(), size_t{SLUICE_MAX_BACKENDS} - 1) << "every free slot gets used";
}

TEST(Balancer, DrainKeepsTheBackendWithDrainingAndNoEntries) {
  Fixture f(web_config(3));
  publish(*f);
  const uint32_t id2 = f.id("10.0.0.2");
  const uint32_t before = f.entries(id2);
  ASSERT_TRUE(f->drain("web", ip("10.0.0.2")).ok());
  const auto r = publish(*f);
  const sluice_backend* b = f.held->backend(id2);
  ASSERT_NE(b, nullptr) << "a draining backend stays in the fast path (its flows stay)";
  EXPECT_EQ(b->flags & SLUICE_BACKEND_DRAINING, SLUICE_BACKEND_DRAINING);
  EXPECT_EQ(f.entries(id2), 0u);
  EXPECT_EQ(f.id("10.0.0.2"), id2);
  EXPECT_TRUE(f.backend("10.0.0.2").draining());
  // Only its share moved (the stable assignment moves little more).
  EXPECT_GE(r.moved("web"), before);
  EXPECT_LE(r.moved("web"), before + before / 2);
  // Undrain: the flag goes, entries come back.
  ASSERT_TRUE(f->set_weight("web", ip("10.0.0.2"), 100).ok());
  publish(*f);
  EXPECT_EQ(f.held->backend(id2)->flags & SLUICE_BACKEND_DRAINING, 0u);
  EXPECT_GT(f.entries(id2), 0u);
}

TEST(Balancer, ADownBackendLeavesTheSnapshotAndComesBack) {
  Fixture f(web_config(3));
  publish(*f);
  const uint32_t id1 = f.id("10.0.0.1");
  ASSERT_TRUE(f->set_backend_health("web", ip("10.0.0.1"), Health::kDown, 1500.0, "refused").ok());
  const auto r = publish(*f);
  EXPECT_EQ(f.held->backend(id1), nullptr) << "its flows must move";
  EXPECT_EQ(f.entries(id1), 0u);
  EXPECT_GT(r.moved("web"), 0u);
  EXPECT_EQ(f.backend("10.0.0.1").last_check, "refused");
  EXPECT_EQ(f.backend("10.0.0.1").rtt_us, 1500.0);
  EXPECT_FALSE(f->vips()[0].panic);
  EXPECT_EQ(f->vips()[0].backends_up, 2u);
  ASSERT_TRUE(f->set_backend_health("web", ip("10.0.0.1"), Health::kUp, 900.0, "ok").ok());
  publish(*f);
  EXPECT_EQ(f.id("10.0.0.1"), id1);
  EXPECT_NE(f.held->backend(id1), nullptr);
  EXPECT_GT(f.entries(id1), 0u);
}

TEST(Balancer, EveryBackendDownIsPanicOverTheNonDrainedOnes) {
  Fixture f(web_config(3));
  ASSERT_TRUE(f->drain("web", ip("10.0.0.3")).ok());
  for (const char* a : {"10.0.0.1", "10.0.0.2", "10.0.0.3"})
    ASSERT_TRUE(f->set_backend_health("web", ip(a), Health::kDown, std::nullopt, "timeout").ok());
  publish(*f);
  const auto& v = f.held->vips.at(0);
  EXPECT_EQ(v.meta.flags & SLUICE_VIP_PANIC, SLUICE_VIP_PANIC);
  EXPECT_TRUE(f->vips()[0].panic);
  EXPECT_GT(f.entries(f.id("10.0.0.1")), 0u);
  EXPECT_GT(f.entries(f.id("10.0.0.2")), 0u);
  EXPECT_EQ(f.entries(f.id("10.0.0.1")) + f.entries(f.id("10.0.0.2")), kM);
  EXPECT_EQ(f.entries(f.id("10.0.0.3")), 0u)
      << "a drained backend takes no new flows, panic or not";
  // One comes back: panic ends, the table is that one's.
  ASSERT_TRUE(f->set_backend_health("web", ip("10.0.0.2"), Health::kUp, 100.0, "ok").ok());
  publish(*f);
  EXPECT_EQ(f.held->vips.at(0).meta.flags & SLUICE_VIP_PANIC, 0u);
  EXPECT_EQ(f.entries(f.id("10.0.0.2")), kM);
}

TEST(Balancer, NoBackendOrAllDrainedGivesAnEmptyTable) {
  for (const bool drained : {false, true}) {
    Fixture f(web_config(drained ? 2 : 0));
    if (drained) {
      ASSERT_TRUE(f->drain("web", ip("10.0.0.1")).ok());
      ASSERT_TRUE(f->drain("web", ip("10.0.0.2")).ok());
    }
    publish(*f);
    const auto& t = f.held->vips.at(0).table;
    ASSERT_EQ(t.size(), kM);
    EXPECT_TRUE(
        std::all_of(t.begin(), t.end(), [](uint32_t e) { return e == SLUICE_BACKEND_NONE; }));
    EXPECT_FALSE(f->vips()[0].panic);
    EXPECT_EQ(f.held->backends.size(), drained ? 2u : 0u);
  }
}

TEST(Balancer, RemovingOneOfFourMovesAboutItsShare) {
  Fixture f(web_config(4));
  publish(*f);
  const uint32_t gone = f.entries(f.id("10.0.0.4"));
  ASSERT_TRUE(f->remove_backend("web", ip("10.0.0.4")).ok());
  const auto r = publish(*f);
  ASSERT_EQ(r.vips.size(), 1u);
  EXPECT_EQ(r.vips[0].name, "web");
  EXPECT_GE(r.moved("web"), gone);
  EXPECT_LE(r.moved("web"), gone + gone / 2);
}

TEST(Balancer, PolicyWeightsShapeTheTable) {
  Fixture f(web_config(2));
  publish(*f);
  const BackendWeight w[] = {{ip("10.0.0.1"), 300}, {ip("10.0.0.2"), 100}};
  ASSERT_TRUE(f->set_effective_weights("web", w).ok());
  publish(*f);
  EXPECT_NEAR(f.entries(f.id("10.0.0.1")), kM * 0.75, 1.0);
  EXPECT_EQ(f.backend("10.0.0.1").effective_weight, 300u);
  EXPECT_EQ(f.backend("10.0.0.1").weight, 100u) << "the configured weight is unchanged";
  // All or nothing: an unknown backend applies none.
  const BackendWeight bad[] = {{ip("10.0.0.1"), 1}, {ip("10.9.9.9"), 1}};
  const auto st = f->set_effective_weights("web", bad);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, -ENOENT);
  EXPECT_EQ(f.backend("10.0.0.1").policy_weight, 300u);
  // Every live backend at policy weight 0 still leaves a full table.
  const BackendWeight zero[] = {{ip("10.0.0.1"), 0}, {ip("10.0.0.2"), 0}};
  ASSERT_TRUE(f->set_effective_weights("web", zero).ok());
  publish(*f);
  EXPECT_EQ(f.entries(f.id("10.0.0.1")) + f.entries(f.id("10.0.0.2")), kM);
}

TEST(Balancer, AFailedPublishLeavesTheOldStateEverywhere) {
  Fixture f(web_config(3));
  publish(*f);
  const auto before_table = f.held->vips.at(0).table;
  const uint64_t gen = f->generation();
  ASSERT_TRUE(f->remove_backend("web", ip("10.0.0.1")).ok());
  f.held->fail_next = 1;
  const auto r = f->publish();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, -EIO);
  EXPECT_NE(r.error().message.find("fake0"), std::string::npos) << r.error().message;
  EXPECT_EQ(list(*f, "web").size(), 3u) << "the change was dropped";
  EXPECT_FALSE(f->dirty());
  EXPECT_EQ(f->generation(), gen);
  EXPECT_EQ(f.held->vips.at(0).table, before_table);
}

TEST(Balancer, ASecondFastpathFailingRestoresTheFirst) {
  auto h1 = std::make_shared<FakeHeld>();
  auto h2 = std::make_shared<FakeHeld>();
  std::vector<std::unique_ptr<control::Fastpath>> fps;
  fps.push_back(std::make_unique<FakeFastpath>(h1));
  fps.push_back(std::make_unique<FakeFastpath>(h2));
  auto b = Balancer::create(config_of(web_config(2)), std::move(fps));
  ASSERT_TRUE(b.ok());
  publish(b.value());
  const auto old = h1->vips.at(0).table;
  ASSERT_TRUE(b.value().drain("web", ip("10.0.0.1")).ok());
  h2->fail_next = 1;
  ASSERT_FALSE(b.value().publish().ok());
  EXPECT_EQ(h1->vips.at(0).table, old);
  EXPECT_EQ(h1->publishes, 3) << "first, the failed change, the restore";
  EXPECT_EQ(h2->vips.at(0).table, old);
}

TEST(Balancer, ReloadIsAllOrNothing) {
  Fixture f(web_config(2));
  publish(*f);
  const uint64_t gen = f->generation();
  // A publish failure during reload: the old model and config stay.
  f.held->fail_next = 1;
  const auto r = f->reload(config_of(web_config(4)));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(list(*f, "web").size(), 2u);
  EXPECT_EQ(f->config().vips.at(0).backends.size(), 2u);
  EXPECT_EQ(f->generation(), gen);
  // Then it works, and runtime changes are replaced by the file.
  ASSERT_TRUE(f->set_weight("web", ip("10.0.0.1"), 7).ok());
  publish(*f);
  const auto ok = f->reload(config_of(web_config(4)));
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(list(*f, "web").size(), 4u);
  EXPECT_EQ(f.backend("10.0.0.1").weight, 100u);
  EXPECT_EQ(f->generation(), gen + 2);
  // An unchanged reload still counts.
  const auto same = f->reload(config_of(web_config(4)));
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same.value().changed);
  EXPECT_EQ(f->generation(), gen + 3);
}

TEST(Balancer, ReloadRefusesSettingsThatNeedARestart) {
  Fixture f(web_config(2));
  publish(*f);
  const uint64_t gen = f->generation();
  struct Case {
    const char* what;
    void (*change)(Config&);
  };
  const Case cases[] = {
      {"[flow_table]", [](Config& c) { c.flow_table.flows_per_core = 1024; }},
      {"[control]", [](Config& c) { c.control.path = "/tmp/other.sock"; }},
      {"[metrics] listen", [](Config& c) { c.metrics.listen = "127.0.0.1:9651"; }},
      {"hash_seed", [](Config& c) { c.hash_seed = 7; }},
  };
  for (const Case& k : cases) {
    Config c = config_of(web_config(3));
    k.change(c);
    const auto r = f->reload(c);
    ASSERT_FALSE(r.ok()) << k.what;
    EXPECT_NE(r.error().message.find(k.what), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("restart"), std::string::npos) << r.error().message;
    // Nothing changed: not the backends, not the generation.
    EXPECT_EQ(list(*f, "web").size(), 2u) << k.what;
    EXPECT_EQ(f->generation(), gen) << k.what;
  }
}

// The cache's maps and filler are sized at start, and a VIP's entries stay
// under its id: [cache] and turning a VIP's cache on or off (or adding or
// removing a cached VIP) need a restart; key routing changes live.
TEST(Balancer, ReloadRefusesCacheChangesButNotKeyRouting) {
  const auto mc = [](const std::string& vip2) {
    return std::string(R"(
[xdp]
interfaces = ["veth0"]
encap_source_v4 = "192.0.2.10"
[[vips]]
name = "mc"
address = "198.51.100.2"
port = 11211
protocol = "udp"
cache = true
table_size = 251
[[vips.backends]]
address = "10.0.1.1"
)") + vip2;
  };
  const std::string plain =
      "[[vips]]\nname = \"mc2\"\naddress = \"198.51.100.3\"\nport = 11211\n"
      "protocol = \"udp\"\ntable_size = 251\n";
  Fixture f(mc(plain));
  publish(*f);
  const uint64_t gen = f->generation();
  struct Case {
    const char* what;  // in the message
    std::string toml;
  };
  const Case cases[] = {
      {"[cache]", "[cache]\nttl_ms = 500\n" + mc(plain)},
      {"the cache of VIP mc (",
       mc(plain).replace(mc("").find("cache = true"), 12, "cache = false")},
      {"the cache of VIP mc2 (", mc(plain + "cache = true\n")},
      {"the cache of VIP mc, mc (",
       mc("").replace(mc("").find("198.51.100.2"), 12, "198.51.100.9")},
      {"the cache of VIP mc3 (", mc(plain + "[[vips]]\nname = \"mc3\"\naddress = \"198.51.100.4\"\n"
                                            "port = 11211\nprotocol = \"udp\"\ncache = true\n")},
  };
  for (const Case& k : cases) {
    const auto r = f->reload(config_of(k.toml));
    ASSERT_FALSE(r.ok()) << k.what;
    EXPECT_NE(r.error().message.find(k.what), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("restart"), std::string::npos) << r.error().message;
    EXPECT_EQ(f->generation(), gen) << k.what;
    EXPECT_EQ(f->vips().size(), 2u) << k.what;
  }
  // Key-affinity routing on and off needs no restart: one flag, published.
  const auto keyed = f->reload(config_of(mc(plain + "hash = \"key\"\n")));
  ASSERT_TRUE(keyed.ok()) << keyed.error().message;
  for (const auto& v : f.held->vips)
    EXPECT_EQ((v.meta.flags & SLUICE_VIP_KEY_HASH) != 0, v.meta.vip_id == f->vips()[1].vip_id);
  ASSERT_TRUE(f->reload(config_of(mc(plain))).ok());
  for (const auto& v : f.held->vips) EXPECT_EQ(v.meta.flags & SLUICE_VIP_KEY_HASH, 0u);
}

TEST(Balancer, ReloadKeepsHealthOfKeptBackends) {
  Fixture f(web_config(2));
  ASSERT_TRUE(f->set_backend_health("web", ip("10.0.0.1"), Health::kDown, 5.0, "timeout").ok());
  publish(*f);
  ASSERT_TRUE(f->reload(config_of(web_config(3))).ok());
  EXPECT_EQ(f.backend("10.0.0.1").health, Health::kDown);
  EXPECT_EQ(f.backend("10.0.0.3").health, Health::kUp);
}

TEST(Balancer, RuntimeChangesAreChecked) {
  Fixture f(web_config(1));
  publish(*f);
  struct Case {
    const char* what;
    control::Status st;
    int code;
  };
  VipConfig dup;
  dup.name = "other";
  dup.addr = ip("198.51.100.1");
  dup.port = 80;
  VipConfig same_name = dup;
  same_name.name = "web";
  same_name.port = 81;
  VipConfig cache_tcp = dup;
  cache_tcp.port = 82;
  cache_tcp.cache = true;
  VipConfig bad_size = dup;
  bad_size.port = 83;
  bad_size.table_size = 1000;
  VipConfig v6 = dup;
  v6.addr = ip("2001:db8::1");
  v6.backends.push_back(BackendConfig{ip("10.0.0.1"), 1, {}, ""});
  VipConfig at_backend = dup;
  at_backend.name = "at-backend";
  at_backend.addr = ip("10.0.0.1");
  VipConfig backend_at_vip = dup;
  backend_at_vip.name = "backend-at-vip";
  backend_at_vip.addr = ip("198.51.100.77");
  backend_at_vip.backends.push_back(BackendConfig{ip("198.51.100.1"), 1, {}, ""});
  VipConfig multicast = dup;
  multicast.port = 84;
  multicast.addr = ip("239.1.2.3");
  const Case cases[] = {
      {"multicast VIP", f->add_vip(multicast), -EINVAL},
      {"loopback backend", f->add_backend("web", BackendConfig{ip("127.0.0.2"), 1, {}, ""}),
       -EINVAL},
      {"backend at the VIP's address",
       f->add_backend("web", BackendConfig{ip("198.51.100.1"), 1, {}, ""}), -EINVAL},
      {"VIP at a backend's address", f->add_vip(at_backend), -EINVAL},
      {"backend at another VIP's address", f->add_vip(backend_at_vip), -EINVAL},
      {"same address/port/protocol", f->add_vip(dup), -EEXIST},
      {"same name", f->add_vip(same_name), -EEXIST},
      {"cache over tcp", f->add_vip(cache_tcp), -EINVAL},
      {"table size not prime", f->add_vip(bad_size), -EINVAL},
      {"v4 backend under v6 VIP", f->add_vip(v6), -EINVAL},
      {"no such VIP", f->remove_vip("nope"), -ENOENT},
      {"backend exists", f->add_backend("web", BackendConfig{ip("10.0.0.1"), 1, {}, ""}), -EEXIST},
      {"unknown health check", f->add_backend("web", BackendConfig{ip("10.0.0.5"), 1, {}, "x"}),
       -EINVAL},
      {"weight too big", f->set_weight("web", ip("10.0.0.1"), 70000), -EINVAL},
      {"no such backend", f->drain("web", ip("10.0.0.7")), -ENOENT},
      {"unchecked with a check",
       f->set_backend_health("web", ip("10.0.0.1"), Health::kUnchecked, std::nullopt, ""), -EINVAL},
  };
  for (const Case& c : cases) {
    ASSERT_FALSE(c.st.ok()) << c.what;
    EXPECT_EQ(c.st.error().code, c.code) << c.what << ": " << c.st.error().message;
  }
  EXPECT_FALSE(f->dirty());
}

TEST(Balancer, AddedVipGetsAFreeIdAndDefaultName) {
  Fixture f(web_config(1));
  publish(*f);
  VipConfig v;
  v.addr = ip("198.51.100.2");
  v.port = 53;
  v.protocol = Protocol::kUdp;
  v.table_size = kM;
  v.hash = HashFields::kSource;
  v.backends.push_back(BackendConfig{ip("10.0.0.1"), 5, {}, ""});
  ASSERT_TRUE(f->add_vip(v).ok());
  const auto r = publish(*f);
  EXPECT_EQ(r.moved("198.51.100.2:53/udp"), 0u);
  const auto vips = f->vips();
  ASSERT_EQ(vips.size(), 2u);
  EXPECT_EQ(vips[1].name, "198.51.100.2:53/udp");
  EXPECT_NE(vips[1].vip_id, vips[0].vip_id);
  const auto* held = f.held->vip(vips[1].vip_id);
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(held->meta.flags & SLUICE_VIP_HASH_SRC_ONLY, SLUICE_VIP_HASH_SRC_ONLY);
  // The same address under another VIP is another backend id.
  const auto all = list(*f);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_NE(all[0].id, all[1].id);
  EXPECT_EQ(f->backend_addresses().size(), 1u);
}

TEST(Balancer, RestartTakesOverIdsFromTheFastpath) {
  // A previous daemon's state: the VIP at id 9, 10.0.0.1 at id 4096 + 5 in
  // its table, 10.0.0.2 drained (VALID, no entries) at 2 * 4096 + 6, and a
  // stale backend in slot 7 the new config does not have.
  auto held = std::make_shared<FakeHeld>();
  control::FastpathState& st = held->initial;
  st.slots.assign(SLUICE_MAX_BACKENDS, sluice_backend{});
  auto put = [&](uint32_t id, const char* a, uint8_t flags) {
    sluice_backend b{};
    b.id = id;
    b.addr = ip(a).ip;
    b.family = SLUICE_FAMILY_IPV4;
    b.flags = flags;
    st.slots[id & (SLUICE_MAX_BACKENDS - 1)] = b;
  };
  const uint32_t k = SLUICE_MAX_BACKENDS;
  put(k + 5, "10.0.0.1", SLUICE_BACKEND_VALID);
  put(2 * k + 6, "10.0.0.2", SLUICE_BACKEND_VALID | SLUICE_BACKEND_DRAINING);
  put(k + 7, "10.9.9.9", SLUICE_BACKEND_VALID);
  put(3 * k + 8, "10.8.8.8", 0);  // removed long ago: its slot's next id is higher
  control::FastpathState::Vip v;
  v.key.addr = ip("198.51.100.1").ip;
  v.key.port = sl_htons(80);
  v.key.proto = SLUICE_IPPROTO_TCP;
  v.key.family = SLUICE_FAMILY_IPV4;
  v.vip_id = 9;
  v.backend_ids = {k + 5};
  st.vips.push_back(v);

  Fixture f(web_config(2, R"([[vips]]
name = "new"
address = "198.51.100.9"
port = 80
table_size = 251
[[vips.backends]]
address = "10.0.0.8"
[[vips.backends]]
address = "10.0.0.9"
[[vips.backends]]
address = "10.0.0.10"
[[vips.backends]]
address = "10.0.0.11"
[[vips.backends]]
address = "10.0.0.12"
[[vips.backends]]
address = "10.0.0.13"
[[vips.backends]]
address = "10.0.0.14"
[[vips.backends]]
address = "10.0.0.15"
[[vips.backends]]
address = "10.0.0.16"
)"),
            held);
  EXPECT_EQ(f->vips()[0].vip_id, 9u);
  EXPECT_NE(f->vips()[1].vip_id, 9u);
  EXPECT_EQ(f.id("10.0.0.1"), k + 5);
  EXPECT_EQ(f.id("10.0.0.2"), 2 * k + 6);
  for (const auto& b : list(*f, "new")) {
    const uint32_t slot = b.id & (k - 1);
    EXPECT_NE(slot, 7u) << "slot 7 is still held by a backend the publish removes";
    if (slot == 8) {
      EXPECT_EQ(b.id, 4 * k + 8);
    }
  }
  publish(*f);
  EXPECT_EQ(f.held->backend(k + 7), nullptr);
}

TEST(Balancer, ActiveFlowsAreUnknownUntilCounted) {
  Fixture f(web_config(2));
  publish(*f);
  for (const auto& v : list(*f)) EXPECT_FALSE(v.active_flows.has_value());
  // The fake cannot count until told what to report.
  const auto s = f->refresh_active_flows();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, -EOPNOTSUPP);
  for (const auto& v : list(*f)) EXPECT_FALSE(v.active_flows.has_value());
}

TEST(Balancer, ActiveFlowsAreSummedOverFastpathsAndKeptUntilTheNextCount) {
  auto h1 = std::make_shared<FakeHeld>();
  auto h2 = std::make_shared<FakeHeld>();
  std::vector<std::unique_ptr<control::Fastpath>> fps;
  fps.push_back(std::make_unique<FakeFastpath>(h1));
  fps.push_back(std::make_unique<FakeFastpath>(h2));
  auto created = Balancer::create(config_of(web_config(3)), std::move(fps));
  ASSERT_TRUE(created.ok());
  Balancer& b = created.value();
  publish(b);
  const auto views = list(b, "web");
  ASSERT_EQ(views.size(), 3u);
  const uint32_t a = views[0].id;
  const uint32_t c = views[2].id;
  h1->active_flows = control::ActiveFlowCounts{{a, 10}, {c, 1}};
  h2->active_flows = control::ActiveFlowCounts{{a, 5}};
  ASSERT_TRUE(b.refresh_active_flows().ok());
  auto counted = list(b, "web");
  EXPECT_EQ(counted[0].active_flows, std::optional<uint64_t>(15));
  EXPECT_EQ(counted[1].active_flows, std::optional<uint64_t>(0));
  EXPECT_EQ(counted[2].active_flows, std::optional<uint64_t>(1));
  // Views read the last count; only refresh_active_flows() asks again.
  const int calls = h1->active_flows_calls;
  h1->active_flows = control::ActiveFlowCounts{};
  (void)list(b, "web");
  (void)b.vips();
  EXPECT_EQ(h1->active_flows_calls, calls);
  EXPECT_EQ(list(b, "web")[0].active_flows, std::optional<uint64_t>(15));
  // One fast path that cannot count makes every count unknown.
  h2->active_flows.reset();
  EXPECT_FALSE(b.refresh_active_flows().ok());
  for (const auto& v : list(b, "web")) EXPECT_FALSE(v.active_flows.has_value());
}

}  // namespace
}  // namespace sluice::test
