// SPDX-License-Identifier: MIT
// ckpt-tool stat: the module's live sessions over its generic netlink family (libnl-genl-3).
#include <linux/ckpt.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cmd.hpp"
#include "error.hpp"
#include "tracker.hpp"

namespace ckpt_tool {
namespace {

struct Session {
  uint32_t pid = 0;
  std::string comm;
  uint64_t regions = 0, pages = 0, dirty = 0, faults = 0, collects = 0, collected = 0;
  uint64_t kept = 0, invalidations = 0, thp_splits = 0;
};

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};

int on_session(nl_msg* msg, void* arg) {
  auto* out = static_cast<std::vector<Session>*>(arg);
  nlattr* a[CKPT_GENL_A_MAX + 1];
  if (genlmsg_parse(nlmsg_hdr(msg), 0, a, CKPT_GENL_A_MAX, nullptr) < 0) return NL_SKIP;
  Session s;
  auto u64 = [&](int i) -> uint64_t { return a[i] ? nla_get_u64(a[i]) : 0; };
  if (a[CKPT_GENL_A_PID]) s.pid = nla_get_u32(a[CKPT_GENL_A_PID]);
  if (a[CKPT_GENL_A_COMM]) s.comm = nla_get_string(a[CKPT_GENL_A_COMM]);
  s.regions = u64(CKPT_GENL_A_REGIONS);
  s.pages = u64(CKPT_GENL_A_PAGES);
  s.dirty = u64(CKPT_GENL_A_DIRTY);
  s.faults = u64(CKPT_GENL_A_FAULTS);
  s.collects = u64(CKPT_GENL_A_COLLECTS);
  s.collected = u64(CKPT_GENL_A_COLLECTED);
  s.kept = u64(CKPT_GENL_A_KEPT);
  s.invalidations = u64(CKPT_GENL_A_INVALIDATIONS);
  s.thp_splits = u64(CKPT_GENL_A_THP_SPLITS);
  out->push_back(std::move(s));
  return NL_OK;
}

// Fills `out` with every session the caller may see. Returns 0, or -errno with `why` set.
int read_sessions(std::vector<Session>* out, std::string* why) {
  std::unique_ptr<nl_sock, SockDeleter> sk(nl_socket_alloc());
  if (!sk) return *why = "out of memory", -ENOMEM;
  if (int e = genl_connect(sk.get()); e < 0) return *why = nl_geterror(e), -ECONNREFUSED;
  int family = genl_ctrl_resolve(sk.get(), CKPT_GENL_NAME);
  if (family < 0) {
    *why = "the ckpt module is not loaded (no generic netlink family \"" CKPT_GENL_NAME
           "\"); load it with: insmod ckpt.ko (see Documentation/admin-guide.md)";
    return -ENOENT;
  }
  nl_socket_modify_cb(sk.get(), NL_CB_VALID, NL_CB_CUSTOM, on_session, out);
  nl_msg* msg = nlmsg_alloc();
  if (!msg) return *why = "out of memory", -ENOMEM;
  genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, NLM_F_DUMP, CKPT_GENL_CMD_GET_SESSIONS,
              CKPT_GENL_VERSION);
  int e = nl_send_auto(sk.get(), msg);
  nlmsg_free(msg);
  if (e >= 0) e = nl_recvmsgs_default(sk.get());
  if (e < 0) return *why = std::string("netlink: ") + nl_geterror(e), -EIO;
  return 0;
}

// The tracker libckpt's auto mode (CKPT_TRACKER honoured) picks in this environment.
std::string tracker_here() {
  std::unique_ptr<ckpt::Tracker> t;
  std::string why;
  if (ckpt::make_tracker(ckpt::TrackerKind::kAuto, &t, &why)) return "none (" + why + ")";
  return t->name();
}

}  // namespace

void add_stat(CLI::App& app, Runner& run) {
  struct Opts {
    bool json = false;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "stat", "Show ckpt.ko's live tracking sessions: process, regions, dirty pages, faults");
  sub->add_flag("--json", opts->json, "print JSON for scripts");
  sub->callback([&run, opts] {
    run = [opts] {
      std::vector<Session> ss;
      std::string why;
      const std::string tracker = tracker_here();
      if (int e = read_sessions(&ss, &why); e < 0) {
        if (e != -ENOENT) throw Error{kFailed, why};
        throw Error{kUnavailable, why,
                    "libckpt tracks with " + tracker +
                        " here (its sessions are not listed: only the module's are)"};
      }
      if (opts->json) {
        nlohmann::json j = nlohmann::json::array();
        for (const auto& s : ss)
          j.push_back({{"pid", s.pid}, {"comm", s.comm}, {"regions", s.regions},
                       {"pages", s.pages}, {"dirty", s.dirty}, {"faults", s.faults},
                       {"collects", s.collects}, {"collected", s.collected},
                       {"kept", s.kept}, {"invalidations", s.invalidations},
                       {"thp_splits", s.thp_splits}});
        std::printf("%s\n", nlohmann::json{{"tracker", tracker}, {"sessions", j}}.dump(2).c_str());
        return int(kOk);
      }
      std::printf("libckpt tracker here: %s\n", tracker.c_str());
      std::printf("%8s %-16s %8s %12s %10s %12s %10s %12s %8s\n", "PID", "COMM", "REGIONS",
                  "PAGES", "DIRTY", "FAULTS", "COLLECTS", "COLLECTED", "KEPT");
      for (const auto& s : ss)
        std::printf("%8u %-16s %8llu %12llu %10llu %12llu %10llu %12llu %8llu\n", s.pid,
                    s.comm.c_str(), (unsigned long long)s.regions, (unsigned long long)s.pages,
                    (unsigned long long)s.dirty, (unsigned long long)s.faults,
                    (unsigned long long)s.collects, (unsigned long long)s.collected,
                    (unsigned long long)s.kept);
      if (ss.empty()) std::printf("(no sessions)\n");
      return int(kOk);
    };
  });
}

}  // namespace ckpt_tool
