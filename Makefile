# ckpt: one entry point. See README.md.
#   make            build ckpt.ko and the userspace parts (installs missing Debian packages)
#   make test       host tests + VM tests on each kernel of KERNELS, a line per kernel and one
#                   summary line; non-zero exit on any failure
#   make vm-test    the VM suites alone          make vm-shell   a shell in the VM
#   CKPT_KERNEL=6.1|6.12|<abi>   the kernel make, vm-test, vm-shell, demo build for and boot
#                   (default 6.1; scripts/kernel-abi.sh); ckpt.ko goes to build/kmod/<abi>/
#   make demo       the main job end to end (VM)  make demo-host  the same without the module
#   make bench      the benchmarks (VM, each kernel of KERNELS; then bench-mpi's and bench-workq's)   make bench-host  the userspace trackers on this kernel, no VM
#   make bench-mpi  libckpt-mpi against MPI-IO on this machine, Open MPI and MPICH, 1/2/4 ranks
#   make mpich      libckpt-mpi, its example and tests against MPICH (build/cmake-mpich; make test runs them)
#   make fuzz       the ioctl fuzzer in the VM, 1 000 000 calls (CKPT_FUZZ_SEED=... replays), then
#                   the host fuzz targets store_fuzz and image_fuzz, 600 s each
#   make install PREFIX=/usr/local
#   make deb        the Debian packages (debian/, debhelper) into build/deb
BUILD   := build/cmake
# libckpt-mpi is built against Open MPI in $(BUILD) and against MPICH in $(MPICH_BUILD) (only
# what the MPI tests and bench need there: not ckpt-tool, which has no MPI in it — the MPICH
# tests use $(BUILD)'s, CKPT_MPI_TOOL); make test runs the MPI tests of both.
MPICH_BUILD := build/cmake-mpich
MPI_TARGETS := ckpt_mpi stencil_mpi
WERROR  ?= $(if $(CI),1,0)
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc)
KERNELS ?= 6.1 6.12

all: kmod userspace

deps:
	@scripts/deps.sh

kmod: deps
	$(MAKE) -C kmod WERROR=$(WERROR)

# ckpt.ko for every kernel make test boots.
kmods: deps
	@for k in $(KERNELS); do $(MAKE) -C kmod WERROR=$(WERROR) CKPT_KERNEL=$$k || exit 1; done

$(BUILD)/CMakeCache.txt: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -DCKPT_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF) \
	  -DCKPT_KSELFTEST_DIR=$$(scripts/fetch-kselftest.sh) -DCMAKE_INSTALL_PREFIX=$(PREFIX) \
	  -DCKPT_MPI=openmpi

$(MPICH_BUILD)/CMakeCache.txt: CMakeLists.txt Makefile | deps
	cmake -S . -B $(MPICH_BUILD) -DCKPT_WERROR=$(if $(filter 1,$(WERROR)),ON,OFF) \
	  -DCKPT_KSELFTEST_DIR=$$(scripts/fetch-kselftest.sh) -DCKPT_MPI=mpich \
	  -DCKPT_MPI_TOOL=$(CURDIR)/$(BUILD)/bin/ckpt-tool

userspace: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# libckpt-mpi and its tests against MPICH (the Open MPI build is part of userspace).
mpich: deps $(MPICH_BUILD)/CMakeCache.txt
	cmake --build $(MPICH_BUILD) -j$(JOBS) --target $(MPI_TARGETS)

test: all kmods mpich
	CKPT_TEST_KERNELS="$(KERNELS)" scripts/test.sh

vm-test: all
	scripts/vm/run -- tests/vm/run-all

demo: all
	scripts/demo.sh

demo-host: all
	scripts/demo.sh --host

vm-shell: all
	scripts/vm/run --interactive -- bash -i

bench: all kmods mpich
	KERNELS="$(KERNELS)" scripts/bench.sh
	cmake --build $(MPICH_BUILD) -j$(JOBS) --target mpi_bench
	scripts/bench-mpi.sh
	scripts/bench-workq.sh

bench-host: userspace
	scripts/bench-host.sh

# libckpt-mpi against MPI-IO, both MPIs, 1/2/4 ranks, on this machine (also part of make bench).
bench-mpi: userspace mpich
	cmake --build $(MPICH_BUILD) -j$(JOBS) --target mpi_bench
	scripts/bench-mpi.sh

fuzz: all
	scripts/fuzz.sh

deb: deps
	scripts/deb.sh

install: all
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	$(MAKE) -C kmod clean
	rm -rf $(BUILD) $(MPICH_BUILD)

distclean: clean
	rm -rf build

.PHONY: all deps kmod kmods userspace mpich bench-mpi test vm-test vm-shell demo demo-host bench bench-host fuzz deb install clean distclean
