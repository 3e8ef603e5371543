#!/bin/sh
# First-boot hook for Raspberry Pi OS: installs the FOA bundle found on the boot partition.
#
# Flashing a gateway:
#   1. write Raspberry Pi OS (Lite, 64-bit, Bookworm or newer) to the SD card;
#   2. copy foa-bundle-AGENT.tar.gz and this file onto its boot partition (the FAT one);
#   3. append to the single line of cmdline.txt on that partition:
#        systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target
#      (on images older than Bookworm the partition is /boot: write /boot/firstrun.sh);
#   4. boot. The box installs the agent, removes the bundle and this hook, and reboots
#      into a running foa.service.
# Images that use cloud-init instead read user-data from the boot partition: see user-data.
#
# The bundle holds the agent's secrets and FAT has no permissions, so it is deleted from the
# boot partition as soon as it is installed. A failed install leaves it there, with the
# reason in firstrun.log on the same partition, and boots normally.
#
# FOA_BOOT_DIR and FOA_INSTALL_ROOT override the boot partition and pass --root to
# install.sh, to try the hook on a PC against a copy of a boot partition.
set -u

BOOT=${FOA_BOOT_DIR:-/boot/firmware}
[ -f "$BOOT/cmdline.txt" ] || BOOT=/boot
LOG="$BOOT/firstrun.log"

# Take this hook off the kernel command line first: whatever happens, it runs once.
sed -i 's| systemd.run=[^ ]*||; s| systemd.run_success_action=[^ ]*||; s| systemd.unit=kernel-command-line.target||' "$BOOT/cmdline.txt"

{
    echo "firstrun: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    BUNDLE=""
    for b in "$BOOT"/foa-bundle-*.tar.gz; do [ -f "$b" ] && BUNDLE=$b && break; done
    if [ -z "$BUNDLE" ]; then
        echo "firstrun: no foa-bundle-*.tar.gz on $BOOT; nothing to install"
    else
        WORK=$(mktemp -d)
        if tar -xzf "$BUNDLE" -C "$WORK" \
            && "$WORK"/foa-bundle/install.sh --no-start ${FOA_INSTALL_ROOT:+--root "$FOA_INSTALL_ROOT"}; then
            shred -u "$BUNDLE" 2>/dev/null || rm -f "$BUNDLE"
            echo "firstrun: installed $(basename "$BUNDLE"); the agent starts after the reboot"
        else
            echo "firstrun: the install failed; the bundle stays on $BOOT"
        fi
        rm -rf "$WORK"
    fi
} >>"$LOG" 2>&1

rm -f "$BOOT/firstrun.sh"
exit 0
