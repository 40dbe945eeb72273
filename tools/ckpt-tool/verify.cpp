// SPDX-License-Identifier: MIT
// ckpt-tool verify STORE: check every page checksum of every retained epoch and the commit
// chain; the exit status says whether the newest epoch is restorable.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "key.hpp"
#include "store_open.hpp"

namespace ckpt_tool {
namespace {

int verify(const std::string& path, bool json, bool quiet) {
  std::unique_ptr<ckpt::store::Store> s = open_for_inspection(path);
  ckpt::store::StoreStat st;
  s->stat(&st);

  // Progress on a terminal only, at most every 100 ms.
  const bool tty = !json && !quiet && isatty(STDERR_FILENO);
  auto last = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  auto progress = [&](uint64_t done, uint64_t total) {
    auto now = std::chrono::steady_clock::now();
    if (tty && (now - last > std::chrono::milliseconds(100) || done == total)) {
      last = now;
      std::fprintf(stderr, "\rverifying: %llu/%llu pages (%3.0f%%)", (unsigned long long)done,
                   (unsigned long long)total, total ? 100.0 * double(done) / double(total) : 100.0);
      std::fflush(stderr);
    }
    return true;
  };
  ckpt::store::VerifyReport rep;
  int r = s->verify(&rep, progress);
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (r < 0 && r != -EIO)
    throw Error{kFailed, path + ": " + std::strerror(-r) + " (" + s->last_error() + ")"};
  const bool newest_ok = r == 0 && st.read_epoch == st.epoch && !rep.meta_fell_back;

  if (json) {
    nlohmann::json j;
    j["path"] = path;
    j["epoch"] = st.epoch;
    j["restorable"] = newest_ok;
    j["restores_epoch"] = rep.newest_intact_epoch;
    j["metadata_fell_back"] = rep.meta_fell_back;
    j["pages_checked"] = rep.pages_checked;
    j["damaged"] = nlohmann::json::array();
    for (const auto& d : rep.damaged)
      j["damaged"].push_back({{"region", d.name.empty() ? std::to_string(d.region) : d.name},
                              {"page", d.page}, {"epoch", d.epoch}});
    std::printf("%s\n", j.dump(2).c_str());
    return newest_ok ? kOk : kFailed;
  }
  if (st.epoch == 0) {
    std::printf("%s: a valid store with no committed epoch (nothing to restore)\n", path.c_str());
    return kOk;
  }
  if (!quiet || !newest_ok) {
    for (const auto& d : rep.damaged)
      std::printf("damaged: region %s page %llu, copy of epoch %llu\n",
                  d.name.empty() ? std::to_string(d.region).c_str() : d.name.c_str(),
                  (unsigned long long)d.page, (unsigned long long)d.epoch);
    if (rep.meta_fell_back)
      std::printf("damaged: metadata of epoch %llu\n", (unsigned long long)st.epoch);
  }
  if (newest_ok) {
    if (!quiet)
      std::printf("%s: ok — epoch %llu restorable, %llu pages checked%s\n", path.c_str(),
                  (unsigned long long)st.epoch, (unsigned long long)rep.pages_checked,
                  rep.damaged.empty() ? "" : " (only the fallback epoch has damage)");
    return kOk;
  }
  if (rep.newest_intact_epoch)
    std::printf("%s: NOT OK — newest epoch %llu is damaged; epoch %llu is intact and restore will "
                "use it\n", path.c_str(), (unsigned long long)st.epoch,
                (unsigned long long)rep.newest_intact_epoch);
  else
    std::printf("%s: NOT OK — no retained epoch is intact; restore fails with EIO naming the "
                "pages above\n", path.c_str());
  return kFailed;
}

}  // namespace

void add_verify(CLI::App& app, Runner& run) {
  struct Opts {
    std::string store;
    bool json = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "verify", "Check every checksum and the commit chain. Exit 0: the newest epoch is "
                "restorable; 1: it is not (damaged pages and the epoch restore would use are "
                "named); 3: no store there, or it is in use.");
  add_key_file_option(sub);
  sub->add_option("STORE", o->store, "store path")->required();
  sub->add_flag("--json", o->json, "print JSON for scripts");
  sub->add_flag("-q,--quiet", o->quiet, "print only problems");
  sub->callback([&run, o] { run = [o] { return verify(o->store, o->json, o->quiet); }; });
}

}  // namespace ckpt_tool
