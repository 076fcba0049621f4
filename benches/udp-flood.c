/* Open-loop DNS flood at a fixed rate, for benches/overload.sh: dnsperf cannot offer more
 * than about 20k queries/s from one shared core, and a closed-loop sender cannot hold a
 * given rate. This one sends RATE queries/s (batches of 64 with sendmmsg, paced against the
 * clock) for SECONDS, each for a name never asked before ("fNNNNNNNN-TAG.ZONE A"), and
 * drains and counts replies on the same 64 sockets. Loopback only; stops by itself.
 * usage: udp-flood ADDR RATE SECONDS ZONE TAG
 * prints: sent=N answered=N seconds=S offered_qps=Q answered_qps=Q */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define SOCKS 64

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

/* Encodes "label.ZONE" as a query for type A with RD set; returns the length. */
static int encode(unsigned char *p, unsigned id, const char *label, const char *zone) {
  char name[256];
  snprintf(name, sizeof name, "%s.%s", label, zone);
  int n = 12;
  memset(p, 0, 12);
  p[0] = id >> 8; p[1] = id & 255; p[2] = 1; p[5] = 1;
  for (char *s = name; *s;) {
    char *d = strchr(s, '.');
    int l = d ? (int)(d - s) : (int)strlen(s);
    if (l == 0 || l > 63) break;
    p[n++] = l; memcpy(p + n, s, l); n += l; s += l;
    if (*s) s++;
  }
  p[n++] = 0; p[n++] = 0; p[n++] = 1; p[n++] = 0; p[n++] = 1;
  return n;
}

int main(int argc, char **argv) {
  if (argc < 6) { fprintf(stderr, "usage: %s ADDR RATE SECONDS ZONE TAG\n", argv[0]); return 2; }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(53)};
  if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 || (ntohl(sa.sin_addr.s_addr) >> 24) != 127) {
    fprintf(stderr, "udp-flood: a loopback IPv4 address is required\n"); return 2;
  }
  double rate = atof(argv[2]), secs = atof(argv[3]);
  if (rate <= 0 || secs <= 0 || secs > 600) { fprintf(stderr, "udp-flood: bad rate or duration\n"); return 2; }
  const char *zone = argv[4], *tag = argv[5];
  int fd[SOCKS];
  for (int i = 0; i < SOCKS; i++) {
    fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd[i] < 0 || connect(fd[i], (struct sockaddr *)&sa, sizeof sa)) { perror("udp-flood: socket"); return 1; }
  }
  static unsigned char q[BATCH][300], rb[BATCH][512];
  struct iovec iv[BATCH];
  struct mmsghdr m[BATCH];
  unsigned long slots = 0, sent = 0, got = 0, seq = 0;
  double t0 = now(), end = t0 + secs, t;
  int s = 0;
  while ((t = now()) < end) {
    /* Send what the clock says is due, in batches, round robin over the sockets. */
    unsigned long due = (unsigned long)((t - t0) * rate);
    while (slots < due) {
      int k = due - slots < BATCH ? (int)(due - slots) : BATCH;
      for (int j = 0; j < k; j++) {
        char label[64];
        snprintf(label, sizeof label, "f%08lx-%s", seq++, tag);
        iv[j] = (struct iovec){q[j], (size_t)encode(q[j], (unsigned)seq, label, zone)};
        m[j].msg_hdr = (struct msghdr){.msg_iov = &iv[j], .msg_iovlen = 1};
      }
      int r = sendmmsg(fd[s], m, k, 0);
      s = (s + 1) % SOCKS;
      slots += k; /* paced by the clock whether or not our own socket buffer took them */
      if (r > 0) sent += (unsigned long)r;
      if (now() >= end) break;
    }
    for (int i = 0; i < SOCKS; i++) {
      for (;;) {
        for (int j = 0; j < BATCH; j++) {
          iv[j] = (struct iovec){rb[j], sizeof rb[j]};
          m[j].msg_hdr = (struct msghdr){.msg_iov = &iv[j], .msg_iovlen = 1};
        }
        int r = recvmmsg(fd[i], m, BATCH, MSG_DONTWAIT, NULL);
        if (r <= 0) break;
        got += r;
        if (r < BATCH) break;
      }
    }
    usleep(200);
  }
  double el = now() - t0;
  printf("sent=%lu answered=%lu seconds=%.2f offered_qps=%.0f answered_qps=%.0f\n", sent, got, el,
         sent / el, got / el);
  return 0;
}
