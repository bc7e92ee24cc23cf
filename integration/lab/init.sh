#!/bin/sh
# /init of the golvs lab guest (busybox sh). Loads the IPVS and lab modules,
# boots into the HOST's root filesystem (9p, read-only, with a tmpfs overlay
# so writes stay in the guest), runs /golvs/spec.sh there as root, prints the
# exit marker and powers off. Variables come from /golvs/env.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
. /golvs/env
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo 1 >/proc/sys/kernel/printk

fail() {
	echo "lab: $*"
	echo "GOLVS-LAB-START $NONCE"
	echo "GOLVS-LAB-EXIT $NONCE 125"
	poweroff -f
}

while read -r m; do
	[ -n "$m" ] || continue
	insmod "/lib/modules/$KVER/$m" || echo "lab: insmod $m failed"
done </golvs/modules

mkdir -p /lower /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /lower || fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 tmpfs /upper
mkdir -p /upper/up /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/up,workdir=/upper/work /newroot || fail "cannot mount the overlay"
for d in proc sys dev; do
	mount --move /$d /newroot/$d || fail "cannot move /$d"
done
mkdir -p /newroot/dev/pts /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/dev/shm
# A fresh /run (netns mounts live there). Not /tmp: the host's /tmp, where
# a CI checkout may live, must stay visible.
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p /newroot/run/golvs /newroot/lib/modules/$KVER
cp /golvs/spec.sh /newroot/run/golvs/spec.sh
# The guest kernel's modules where its modprobe looks for them.
mount --bind /lib/modules/$KVER /newroot/lib/modules/$KVER
hostname golvs-lab
ip link set lo up 2>/dev/null
# Forwarded ports (Options.HostForward): the user-network NIC, QEMU's
# default guest address; nothing else is routed.
if [ -n "$NET_ADDR" ]; then
	ip addr add "$NET_ADDR" dev eth0 && ip link set eth0 up || fail "cannot bring up eth0 for the forwarded ports"
fi

if [ "$SYSTEMD" = 1 ]; then
	# Debian's systemd as PID 1 of the host root: it boots only what the
	# golvs-lab target needs (sysinit, basic, the command), then the
	# command's unit prints the markers and powers off.
	sd=/newroot/etc/systemd/system
	mkdir -p $sd
	rm -f /newroot/etc/machine-id
	: >/newroot/etc/machine-id
	# The host may be a container; the guest is a VM (systemd would
	# otherwise skip udev and friends as in a container).
	rm -f /newroot/.dockerenv /newroot/run/.containerenv
	# Scanning the host's tree over 9p takes half a minute under TCG and
	# the lab needs none of it: no tmpfiles setup, the journal in /run.
	for u in systemd-tmpfiles-setup.service systemd-journal-flush.service; do
		ln -sf /dev/null $sd/$u
	done
	cat >$sd/golvs-lab.target <<UNIT
[Unit]
Description=golvs lab command
Requires=golvs-lab.service
After=golvs-lab.service
AllowIsolate=yes
UNIT
	cat >$sd/golvs-lab.service <<UNIT
[Unit]
Description=golvs lab command
After=basic.target
[Service]
Type=oneshot
StandardInput=null
StandardOutput=tty
StandardError=inherit
TTYPath=/dev/ttyS0
ExecStart=/bin/sh -c 'echo "GOLVS-LAB-START $NONCE"; /bin/sh /run/golvs/spec.sh; echo "GOLVS-LAB-EXIT $NONCE \$\$?"; exec /bin/systemctl poweroff -ff'
UNIT
	exec switch_root /newroot /lib/systemd/systemd --unit=golvs-lab.target --show-status=false
fi

echo "GOLVS-LAB-START $NONCE"
chroot /newroot /bin/sh /run/golvs/spec.sh </dev/null
rc=$?
echo "GOLVS-LAB-EXIT $NONCE $rc"
poweroff -f
