// SPDX-License-Identifier: BSD-2-Clause
// The `sluice` binary run as an operator runs it: exit codes, and the
// output of check-config and maglev (tables and --json).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Outcome {
  int code = -1;
  std::string out;
  std::string err;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs sluice with `args` (shell words), stdout and stderr captured apart.
Outcome sluice(const std::string& args) {
  const std::string err_path = testing::TempDir() + "sluice_cli_stderr";
  const std::string cmd = std::string(SLUICE_BIN) + " " + args + " 2>" + err_path;
  Outcome r;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = read_file(err_path);
  return r;
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

// What every file `sluice run` takes needs: a fast path.
const std::string kXdp =
    "[xdp]\ninterfaces = [\"sluice-cli0\"]\nencap_source_v4 = \"192.0.2.10\"\n";

TEST(Cli, CheckConfigExampleIsOk) {
  const Outcome r = sluice(std::string("check-config ") + SLUICE_EXAMPLE_CONFIG);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::string(SLUICE_EXAMPLE_CONFIG) + ": ok (2 VIPs, 5 backends)\n");
  EXPECT_EQ(r.err, "");
}

TEST(Cli, CheckConfigPrintsEveryErrorAndExits1) {
  const std::string path = write_temp("broken.toml",
                                      "[[vips]]\naddress = \"192.0.2.1\"\nport = 80\n"
                                      "[[vips.backends]]\naddress = \"10.0.0.1\"\nweight = -3\n"
                                      "colour = \"red\"\n" + kXdp);
  const Outcome r = sluice("check-config " + path);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, path + ":6:10: vips[0].backends[0].weight: expected an integer 0..65535, got -3\n" +
                       path + ":7:1: vips[0].backends[0].colour: unknown key; expected one of: "
                              "address, weight, capacity or health_check\n" +
                       path + ": 2 errors\n");
}

TEST(Cli, CheckConfigWarnsButPasses) {
  const std::string path = write_temp(
      "drained.toml",
      "[[vips]]\naddress = \"192.0.2.1\"\nport = 80\n[[vips.backends]]\naddress = "
      "\"10.0.0.1\"\nweight = 0\n" + kXdp);
  const Outcome r = sluice("check-config " + path);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, path + ": ok (1 VIP, 1 backend)\n");
  EXPECT_EQ(r.err, path + ":1:1: vips[0]: warning: every backend has weight 0: the VIP is drained "
                          "(no new flows)\n");
}

TEST(Cli, CheckConfigRefusesWhatTheDaemonRefuses) {
  struct Case {
    const char* name;
    std::string text;
    std::string error;  // after "path:"
  };
  const std::string vip =
      "[[vips]]\naddress = \"192.0.2.1\"\nport = 80\n[[vips.backends]]\naddress = "
      "\"10.0.0.1\"\n";
  const Case cases[] = {
      {"no_fast_path.toml", vip,
       "1:1: xdp: missing; `sluice run` and `sluice attach` need an [xdp] or a [dpdk] section "
       "(the fast path's interfaces and encap sources)\n"},
      {"bgp_lo.toml", vip + kXdp + "[bgp]\ntable = 10\ndevice = \"lo\"\n",
       "11:10: bgp.device: \"lo\" is the loopback interface; expected the name of a TUN device "
       "of sluice's own (default \"sluice-vips\")\n"},
      {"bgp_xdp_if.toml",
       vip + kXdp + "[bgp]\nannounce = true\ntable = 10\ndevice = \"sluice-cli0\"\n",
       "12:10: bgp.device: \"sluice-cli0\" is an [xdp] interface; expected the name of a TUN "
       "device of sluice's own\n"},
      {"bgp_slash.toml", vip + kXdp + "[bgp]\ntable = 10\ndevice = \"a/b\"\n",
       "11:10: bgp.device: expected an interface name (1-15 bytes, no '/', ':' or spaces), got "
       "\"a/b\"\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = write_temp(c.name, c.text);
    const Outcome r = sluice("check-config " + path);
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.err, path + ":" + c.error + path + ": 1 error\n");
  }
}

TEST(Cli, UsageErrorsAndUnreadableFilesExit2) {
  EXPECT_EQ(sluice("check-config /nonexistent/sluice.toml").code, 2);
  EXPECT_EQ(sluice("check-config").code, 2);
  EXPECT_EQ(sluice("").code, 2);
  EXPECT_EQ(sluice("no-such-command").code, 2);
  EXPECT_EQ(sluice("maglev").code, 2);
  EXPECT_EQ(sluice("maglev --backends 10.0.0.1,nonsense").code, 2);
  EXPECT_EQ(sluice("maglev --backends 10.0.0.1 --weights 1,2").code, 2);
  EXPECT_EQ(sluice("maglev --backends 10.0.0.1 --size 1000").code, 2);
  EXPECT_EQ(sluice("maglev --backends 10.0.0.1,10.0.0.1").code, 2);
  EXPECT_EQ(sluice("maglev --backends 10.0.0.1 --weights 0").code, 2);
  EXPECT_EQ(sluice("maglev --backends 10.0.0.1 --compare-weights 1").code, 2);
  EXPECT_EQ(sluice("maglev --backends 10.0.0.1 --weights 65536").code, 2);
  EXPECT_EQ(sluice("maglev --backends 10.0.0.1 --weights -1").code, 2);
}

TEST(Cli, MaglevRefusesEmptyListItems) {
  for (const char* args : {"--backends 10.0.0.1,,10.0.0.2", "--backends 10.0.0.1,",
                           "--backends ,10.0.0.1", "--backends 10.0.0.1,10.0.0.2 --weights 1,,2",
                           "--backends 10.0.0.1 --compare 10.0.0.1,,10.0.0.2"}) {
    SCOPED_TRACE(args);
    const Outcome r = sluice(std::string("maglev ") + args);
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("an empty item in"), std::string::npos) << r.err;
  }
}

TEST(Cli, AnUnknownSubcommandIsNamed) {
  const Outcome top = sluice("no-such-command");
  EXPECT_EQ(top.code, 2);
  EXPECT_EQ(top.err.rfind("unknown subcommand 'no-such-command' of sluice; expected one of: "
                          "check-config, maglev, ",
                          0),
            0u)
      << top.err;
  const Outcome ctl = sluice("ctl statsu");
  EXPECT_EQ(ctl.code, 2);
  EXPECT_EQ(ctl.err.rfind("unknown subcommand 'statsu' of ctl; expected one of: ", 0), 0u)
      << ctl.err;
  // Still CLI11's own message when nothing was given.
  EXPECT_NE(sluice("").err.find("A subcommand is required"), std::string::npos);
}

// The --help of `words` and of every subcommand below it (as the man page
// generator walks them): no line wider than 72 columns, so sluice.1 (which
// holds them verbatim, indented by 7) fits 80.
void expect_help_fits(const std::string& words) {
  const Outcome r = sluice(words + (words.empty() ? "" : " ") + "--help");
  ASSERT_EQ(r.code, 0) << words;
  std::istringstream lines(r.out);
  std::string line;
  bool in_subcommands = false;
  std::vector<std::string> subs;
  while (std::getline(lines, line)) {
    EXPECT_LE(line.size(), 72u) << "sluice " << words << " --help: " << line;
    if (line.rfind("Subcommands:", 0) == 0) in_subcommands = true;
    if (in_subcommands && line.size() > 2 && line[0] == ' ' && line[1] == ' ' && line[2] != ' ')
      subs.push_back(line.substr(2, line.find(' ', 2) - 2));
  }
  for (const std::string& sub : subs) expect_help_fits(words + (words.empty() ? "" : " ") + sub);
}

TEST(Cli, EveryHelpFitsTheManPage) { expect_help_fits(""); }

TEST(Cli, HelpAndVersion) {
  for (const char* args : {"--help", "check-config --help", "maglev --help"}) {
    const Outcome r = sluice(args);
    EXPECT_EQ(r.code, 0) << args;
    EXPECT_NE(r.out.find("Usage:"), std::string::npos) << args << ": " << r.out;
  }
  const Outcome v = sluice("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out.rfind("sluice ", 0), 0u) << v.out;
}

TEST(Cli, MaglevTableSumsToSize) {
  const Outcome r = sluice("maglev --backends 10.0.0.1,10.0.0.2,2001:db8::3 --weights 1,1,2 --size 251");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(line.rfind("backend", 0), 0u) << line;
  uint64_t sum = 0;
  int rows = 0;
  while (std::getline(lines, line) && line.rfind("table size", 0) != 0) {
    std::istringstream row(line);
    std::string addr;
    uint64_t weight = 0, entries = 0;
    row >> addr >> weight >> entries;
    sum += entries;
    ++rows;
  }
  EXPECT_EQ(rows, 3);
  EXPECT_EQ(sum, 251u);
  EXPECT_EQ(line.rfind("table size 251 entries, 3 backends", 0), 0u) << line;
}

TEST(Cli, MaglevJsonWithCompare) {
  const Outcome r = sluice(
      "maglev --backends 10.0.0.1,10.0.0.2,10.0.0.3,10.0.0.4 --compare 10.0.0.1,10.0.0.2,10.0.0.3 "
      "--size auto --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const uint32_t m = j["table_size"];
  EXPECT_EQ(m, 65537u);
  uint64_t sum = 0;
  ASSERT_EQ(j["backends"].size(), 4u);
  for (const auto& b : j["backends"]) {
    sum += b["entries"].get<uint64_t>();
    EXPECT_DOUBLE_EQ(b["weight_share"].get<double>(), 0.25);
    EXPECT_LT(std::abs(b["deviation"].get<double>()), 0.001);
  }
  EXPECT_EQ(sum, m);
  EXPECT_EQ(j["compare"]["table_size"], m);
  EXPECT_EQ(j["compare"]["backends"].size(), 3u);
  // Removing one of four moves at least its quarter, and the builder keeps
  // it close to that.
  const uint32_t moved = j["disruption"]["moved"];
  const uint32_t minimum = j["disruption"]["minimum"];
  EXPECT_EQ(minimum, j["backends"][3]["entries"].get<uint32_t>());
  EXPECT_GE(moved, minimum);
  EXPECT_LT(moved, minimum * 3 / 2);
}

}  // namespace
