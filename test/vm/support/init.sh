#!/bin/busybox sh
# The VM's /init (busybox sh, PID 1). Two stages:
#   boot  (in the initramfs) loads the modules, mounts the host root from the
#         9p share "host" read-only at /newroot, puts writable file systems
#         where programs write, shows the host paths the job keeps visible,
#         mounts the results share "vm", then switch_root's into the host
#         root, so every path is the host's path and / is a real mount
#         (runc's pivot_root refuses an initramfs root).
#   run   (in the host root) runs the job the host wrote into the results
#         share, records its exit status and powers off.
# Every message goes to the console (ttyS0), which the host keeps as the
# console log. Nothing here evaluates text from the job: each argument and
# each environment value is read from its own file into one variable.

RESULTS=/run/vm                 # the results share; the host's run directory

say() { echo "vm-init: $*" > /dev/console; }

# Without a working guest there is no program to run: say why and stop. The
# host finds no exit-status file and reports this console log.
die() {
	say "FAILED: $*"
	busybox sync
	busybox poweroff -f
}

# The content of file $1 in REPLY, trailing newlines included (command
# substitution strips them, hence the sentinel dot).
read_file() {
	REPLY=$(busybox cat "$1" && echo .) || die "cannot read $1"
	REPLY=${REPLY%.}
}

boot() {
	export PATH=/bin
	busybox mount -t proc proc /proc
	busybox mount -t devtmpfs devtmpfs /dev
	while read -r module; do
		busybox insmod "/modules/$module" || die "insmod $module failed"
	done < /modules/order

	# msize: 9p moves at most this much per request; a large one means fewer
	# round trips through the emulated virtio queue when node loads its files.
	# cache=loose: the host root does not change under a run, so the guest may
	# cache what it read.
	busybox mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose host /newroot \
		|| die "cannot mount the host root (9p tag host)"
	# The host root as it is, for the host paths the job keeps visible below
	# the guest's own mounts (a checkout under /tmp, say).
	busybox mkdir -p /hostview /vm
	busybox mount -o bind /newroot /hostview
	busybox mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 vm /vm \
		|| die "cannot mount the results share (9p tag vm)"
	N=/newroot
	busybox mount -t proc proc $N/proc
	busybox mount -t sysfs sysfs $N/sys
	busybox mount -t devtmpfs devtmpfs $N/dev
	busybox mkdir -p $N/dev/pts $N/dev/shm $N/dev/mqueue
	# What udev would add and shells and tools expect (bash's <(...), /dev/stdin).
	busybox ln -s /proc/self/fd $N/dev/fd
	busybox ln -s /proc/self/fd/0 $N/dev/stdin
	busybox ln -s /proc/self/fd/1 $N/dev/stdout
	busybox ln -s /proc/self/fd/2 $N/dev/stderr
	busybox mount -t devpts -o newinstance,ptmxmode=0666 devpts $N/dev/pts
	busybox mount -t tmpfs -o mode=1777 tmpfs $N/dev/shm
	busybox mount -t mqueue mqueue $N/dev/mqueue
	busybox mount -t cgroup2 cgroup2 $N/sys/fs/cgroup || die "cannot mount cgroup2"
	busybox mount -t tmpfs -o mode=1777 tmpfs $N/tmp
	busybox mount -t tmpfs -o mode=0755 tmpfs $N/run

	# /etc, /var and /root stay the host's but writable: an overlay whose
	# upper layer lives in guest memory, so nothing reaches the host.
	busybox mkdir -p /overlay
	busybox mount -t tmpfs -o mode=0755 tmpfs /overlay
	for dir in etc var root; do
		busybox mkdir -p /overlay/$dir/upper /overlay/$dir/work
		busybox mount -t overlay -o "lowerdir=$N/$dir,upperdir=/overlay/$dir/upper,workdir=/overlay/$dir/work" \
			overlay $N/$dir || die "cannot mount an overlay on /$dir"
	done
	# containerd's and our snapshotter's state hold overlay upper dirs, which
	# an overlay cannot provide; plain tmpfs can.
	for dir in var/lib/containerd var/lib/containerd-integrity var/tmp; do
		busybox mkdir -p $N/$dir
		busybox mount -t tmpfs -o mode=0755 tmpfs $N/$dir
	done
	busybox chmod 1777 $N/var/tmp

	for file in /vm/job/keep/*; do
		[ -f "$file" ] || continue
		read_file "$file"
		busybox mkdir -p "$N$REPLY" && busybox mount -o bind "/hostview$REPLY" "$N$REPLY" \
			|| die "cannot show host path $REPLY in the guest"
	done
	busybox mkdir -p $N$RESULTS
	busybox mount -o move /vm $N$RESULTS
	busybox cp /init $N/run/vm-init
	say "root ready"
	busybox umount /proc /dev
	exec busybox switch_root $N /bin/busybox sh /run/vm-init run
}

run() {
	[ -d $RESULTS/job/argv ] || die "no job in $RESULTS/job"
	read_file $RESULTS/job/cwd
	cd "$REPLY" || die "cannot cd to $REPLY"
	busybox ip link set lo up

	# The program's environment is exactly the job's: env -i, then
	# NAME=value pairs, then the argv (argv[0] has no '=': the host checks).
	set -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
		VM_RESULTS_DIR=$RESULTS/results
	for file in $RESULTS/job/env/*; do
		[ -f "$file" ] || continue
		read_file "$file"
		set -- "$@" "${file##*/}=$REPLY"
	done
	for file in $RESULTS/job/argv/*; do
		read_file "$file"
		set -- "$@" "$REPLY"
	done

	say "running the job"
	busybox "$@" > $RESULTS/output.log 2>&1 < /dev/null
	status=$?
	echo $status > $RESULTS/exit-status
	busybox sync
	say "job exited with status $status"
	busybox poweroff -f
}

# The kernel passes init any unknown boot parameters as arguments, so only
# "run" is a stage name; anything else is the first stage.
if [ "${1:-}" = run ]; then run; else boot; fi
