/* Escape probes, run inside a sandbox. Each probe tries one way out of
 * it and prints "blocked NAME" or "ESCAPED NAME: detail". Every probe is
 * harmless if it succeeds: a sysctl is written back with the value just
 * read, a device is opened but never written, a mount is made inside the
 * sandbox's own mount namespace only.
 *
 * usage: probe HOST_PID:HOST_NETNS [MARKERS_FILE]
 *   HOST_PID      a process outside the sandbox (ptrace and kill must fail)
 *   HOST_NETNS    the inode of the host's network namespace (a packet
 *                 socket there would capture the host's traffic)
 *   MARKERS_FILE  strings, one a line, that no process's cmdline or environ
 *                 and no line of mountinfo may show (host paths, the host's
 *                 argv, build args); in a file, so that they are not in
 *                 the command line of the probe's own parent
 *
 * Exit status: the number of escapes. Built static by the tests with the
 * host's C compiler, so it runs on any root filesystem. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

static int escapes;

static void verdict(const char *name, int escaped, const char *detail) {
    if (escaped) {
        escapes++;
        printf("ESCAPED %s: %s\n", name, detail);
    } else {
        printf("blocked %s\n", name);
    }
}

/* Writes a file back with its own content: an escape if the write works. */
static void write_back(const char *name, const char *path) {
    char buf[4096] = {0};
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    fd = open(path, O_WRONLY);
    if (fd < 0) {
        verdict(name, 0, "");
        return;
    }
    ssize_t w = n > 0 ? write(fd, buf, (size_t)n) : -1;
    close(fd);
    verdict(name, w >= 0, path);
}

/* Opens a device path for writing (never writes): sysrq-trigger. */
static void open_for_write(const char *name, const char *path) {
    int fd = open(path, O_WRONLY);
    if (fd >= 0)
        close(fd);
    verdict(name, fd >= 0, path);
}

/* mknod + open of a char device: an escape if it can be opened. */
static void device(const char *name, unsigned major, unsigned minor, int flags) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/probe-%s", name);
    unlink(path);
    if (mknod(path, S_IFCHR | 0600, makedev(major, minor)) < 0) {
        verdict(name, 0, "");
        return;
    }
    int fd = open(path, flags);
    if (fd >= 0)
        close(fd);
    unlink(path);
    verdict(name, fd >= 0, "mknod and open worked");
}

/* An existing path (e.g. a node COPYed into the image) must not open. */
static void open_node(const char *name, const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd >= 0)
        close(fd);
    verdict(name, fd >= 0, path);
}

/* A masked file reads empty. */
static void masked(const char *name, const char *path) {
    char buf[64];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? 0 : read(fd, buf, sizeof buf);
    if (fd >= 0)
        close(fd);
    verdict(name, n > 0, path);
}

/* No file descriptor beyond stdio may come in from rbuild (a layer dir, a
 * store file, a pipe of the host). */
static void inherited_fds(void) {
    char found[512] = "";
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
            continue;
        char p[64], target[256] = "";
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(p, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        snprintf(found, sizeof found, "fd %d -> %s", fd, target);
    }
    if (d)
        closedir(d);
    verdict("inherited-fd", found[0] != 0, found);
}

/* Searches every /proc/PID/{cmdline,environ} and /proc/self/mountinfo. */
static int file_contains(const char *path, const char *needle) {
    static char buf[1 << 20];
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = 0, r;
    while (n < (ssize_t)sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += r;
    close(fd);
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == 0)
            buf[i] = ' ';
    buf[n > 0 ? n : 0] = 0;
    return strstr(buf, needle) != NULL;
}

/* A packet socket sees every frame of its network namespace: an escape
 * when that namespace is the host's. */
static void packet_capture(unsigned long host_netns) {
    int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (s < 0) {
        verdict("capture-host-traffic", 0, "");
        return;
    }
    close(s);
    struct stat st;
    int same = stat("/proc/self/ns/net", &st) == 0 && st.st_ino == host_netns;
    verdict("capture-host-traffic", same, "a packet socket in the host's network namespace");
}

static void markers(const char *file) {
    static char list[8192];
    int lf = open(file, O_RDONLY);
    ssize_t len = lf < 0 ? 0 : read(lf, list, sizeof list - 1);
    if (lf >= 0)
        close(lf);
    list[len > 0 ? len : 0] = 0;
    int m = 0;
    for (char *marker = strtok(list, "\n"); marker; marker = strtok(NULL, "\n")) {
        m++;
        char found[512] = "";
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9' || atoi(e->d_name) == getpid())
                continue;
            const char *files[] = {"cmdline", "environ"};
            for (int f = 0; f < 2; f++) {
                char p[300];
                snprintf(p, sizeof p, "/proc/%s/%s", e->d_name, files[f]);
                if (file_contains(p, marker))
                    snprintf(found, sizeof found, "%s", p);
            }
        }
        if (d)
            closedir(d);
        if (file_contains("/proc/self/mountinfo", marker))
            snprintf(found, sizeof found, "/proc/self/mountinfo");
        char name[64];
        snprintf(name, sizeof name, "marker-%d", m);
        verdict(name, found[0] != 0, found);
    }
}

int main(int argc, char **argv) {
    const char *netns = argc < 2 ? NULL : strchr(argv[1], ':');
    if (!netns) {
        fprintf(stderr, "usage: probe HOST_PID:HOST_NETNS [MARKERS_FILE]\n");
        return 100;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    pid_t host = (pid_t)atoi(argv[1]);
    unsigned long host_netns = strtoul(netns + 1, NULL, 10);

    open_for_write("sysrq-trigger", "/proc/sysrq-trigger");
    write_back("core_pattern", "/proc/sys/kernel/core_pattern");
    write_back("swappiness", "/proc/sys/vm/swappiness");
    write_back("hostname-sysctl", "/proc/sys/kernel/hostname");
    masked("proc-keys", "/proc/keys");
    masked("proc-timer_list", "/proc/timer_list");
    masked("proc-kcore", "/proc/kcore");
    device("kmsg", 1, 11, O_WRONLY);
    device("vcs1", 7, 1, O_RDONLY);
    device("sda", 8, 0, O_RDONLY);
    open_node("copied-node", "/probe-node");

    verdict("mount", mount("tmpfs", "/tmp", "tmpfs", 0, NULL) == 0, "mounted a tmpfs");
    verdict("umount", umount2("/proc/sys", MNT_DETACH) == 0, "unmounted /proc/sys");
    verdict("unshare-user", unshare(CLONE_NEWUSER) == 0, "new user namespace");
    verdict("unshare-mount", unshare(CLONE_NEWNS) == 0, "new mount namespace");
    /* keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0) */
    verdict("keyctl", syscall(SYS_keyctl, 0, -4, 0) >= 0, "read a keyring id");
    /* bpf(BPF_MAP_CREATE, NULL, 0): EFAULT means the call got through. */
    long b = syscall(SYS_bpf, 0, NULL, 0);
    verdict("bpf", b >= 0 || errno == EFAULT || errno == EINVAL, strerror(errno));
    verdict("ptrace-host", ptrace(PTRACE_ATTACH, host, 0, 0) == 0, "attached");
    verdict("kill-host", kill(host, 0) == 0, "signalled a host process");
    packet_capture(host_netns);
    inherited_fds();
    if (argc > 2)
        markers(argv[2]);
    return escapes;
}
