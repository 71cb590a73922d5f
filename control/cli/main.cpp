// SPDX-License-Identifier: BSD-2-Clause
// The `sluice` binary's entry point: the CLI11 app, logging to stderr,
// and the mapping of parse failures to exit codes.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "control/cli/commands.hpp"

#ifndef SLUICE_VERSION
#error "SLUICE_VERSION must be defined by the build"
#endif

namespace {

// CLI11 takes a mistyped subcommand for an extra argument and reports only
// "A subcommand is required": the word the user typed, when that is what
// happened, for the innermost command given.
std::optional<std::string> unknown_subcommand(CLI::App& app) {
  CLI::App* at = &app;
  for (std::vector<CLI::App*> given; !(given = at->get_subcommands()).empty();) at = given.front();
  if (at->get_require_subcommand_min() == 0) return std::nullopt;
  for (const std::string& word : at->remaining())
    if (!word.empty() && word[0] != '-') {
      std::string names;
      // Option groups are nameless subcommands to CLI11.
      for (const CLI::App* sub :
           at->get_subcommands([](CLI::App* a) { return !a->get_name().empty(); }))
        names += (names.empty() ? "" : ", ") + sub->get_name();
      return "unknown subcommand '" + word + "' of " + at->get_name() + "; expected one of: " +
             names;
    }
  return std::nullopt;
}

// Help texts wrapped to fit 80 columns once indented by man(1) (sluice.1
// holds every subcommand's --help verbatim, 7 columns in): a two-column
// line ("  --name TEXT   what it does") continues under its description,
// any other under its own indent.
constexpr size_t kHelpWidth = 72;

std::string wrap_help(std::string_view text) {
  std::string out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    const bool ended = nl != std::string_view::npos;
    if (line.size() <= kHelpWidth) {
      out.append(line);
      if (ended) out += '\n';
      continue;
    }
    size_t hang = line.find_first_not_of(' ');
    const size_t gap = line.find("  ", hang);
    if (gap != std::string_view::npos) {
      const size_t desc = line.find_first_not_of(' ', gap);
      if (desc != std::string_view::npos && desc <= kHelpWidth / 2) hang = desc;
    }
    std::string cur(line.substr(0, hang));
    bool has_word = false;
    std::string_view rest = line.substr(hang);
    while (!rest.empty()) {
      const size_t sp = rest.find(' ');
      const std::string_view word = rest.substr(0, sp);
      rest.remove_prefix(sp == std::string_view::npos ? rest.size() : sp + 1);
      if (word.empty()) continue;
      if (has_word && cur.size() + 1 + word.size() > kHelpWidth) {
        out += cur + '\n';
        cur.assign(hang, ' ');
        has_word = false;
      }
      if (has_word) cur += ' ';
      cur.append(word);
      has_word = true;
    }
    out += cur;
    if (ended) out += '\n';
  }
  return out;
}

class WrappingFormatter : public CLI::Formatter {
 public:
  std::string make_help(const CLI::App* app, std::string name,
                        CLI::AppFormatMode mode) const override {
    return wrap_help(CLI::Formatter::make_help(app, std::move(name), mode));
  }
};

}  // namespace

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("sluice");
  logger->set_pattern("%n: %^%l%$: %v");
  spdlog::set_default_logger(logger);

  CLI::App app{"sluice: a layer-4 load balancer (XDP fast path, Maglev hashing, DSR)", "sluice"};
  // Before the subcommands: each takes its parent's formatter.
  app.formatter(std::make_shared<WrappingFormatter>());
  app.set_version_flag("--version", "sluice " SLUICE_VERSION);
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "Least severe log level printed to stderr")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();

  std::function<int()> run;
  sluice::cli::add_check_config(app, &run);
  sluice::cli::add_maglev(app, &run);
  sluice::cli::add_attach(app, &run);
  sluice::cli::add_run(app, &run);
  sluice::cli::add_detach(app, &run);
  sluice::cli::add_ctl(app, &run);
  sluice::cli::add_decap(app, &run);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    if (const auto unknown = unknown_subcommand(app)) {
      std::fprintf(stderr, "%s\nRun with --help for more information.\n", unknown->c_str());
      return sluice::cli::kExitUsage;
    }
    (void)app.exit(e);
    return sluice::cli::kExitUsage;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));
  return run();
}
