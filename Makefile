# ckpt: one entry point. See README.md.
#   make            build ckpt.ko and the userspace parts (installs missing Debian packages)
#   make test       host tests + VM tests, one summary line; non-zero exit on any failure
#   make vm-test    the VM suites alone          make vm-shell   a shell in the VM
#   make demo       the main job end to end (VM)  make demo-host  the same without the module
#   make bench      the benchmarks (VM)   make bench-host  the userspace trackers on this kernel, no VM
#   make install PREFIX=/usr/local
BUILD   := build/cmake
WERROR  ?= $(if $(CI),1,0)
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc)

all: kmod userspace

deps:
	@scripts/deps.sh

kmod: deps
	$(MAKE) -C kmod WERROR=$(WERROR)

$(BUILD)/CMakeCache.txt: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -DCKPT_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF) \
	  -DCKPT_KSELFTEST_DIR=$$(scripts/fetch-kselftest.sh) -DCMAKE_INSTALL_PREFIX=$(PREFIX)

userspace: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: all
	scripts/test.sh

vm-test: all
	scripts/vm/run -- tests/vm/run-all

demo: all
	scripts/demo.sh

demo-host: all
	scripts/demo.sh --host

vm-shell: all
	scripts/vm/run --interactive -- bash -i

bench: all
	scripts/bench.sh

bench-host: userspace
	scripts/bench-host.sh

install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	$(MAKE) -C kmod clean
	rm -rf $(BUILD)

distclean: clean
	rm -rf build

.PHONY: all deps kmod userspace test vm-test vm-shell demo demo-host bench bench-host install clean distclean
