// UDP flooder for the data-plane flood test: sends datagrams at a fixed rate to one address, from many source ports.
//
//   udp-flooder <dst-ip> <dst-port> <rate/s> <seconds> <size> <sender-hex|random> [source-ports]
//
// With a 12-hex-digit sender, every datagram is a forged sleeve packet: that peer name in clear, a fresh
// counter, random "ciphertext". With `random`, every byte is random. Datagrams go out in sendmmsg batches,
// paced against the monotonic clock, round-robin over `source-ports` sockets (default 16). Prints
// `SENT <datagrams> <seconds>` on stdout at the end (also on SIGTERM/SIGINT).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 32
#define VARIANTS 256
#define MAX_SOCKETS 256

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s dst-ip dst-port rate seconds size sender-hex|random [source-ports]\n", argv[0]);
    return 2;
  }
  const char *dst_ip = argv[1];
  int dst_port = atoi(argv[2]);
  double rate = atof(argv[3]);
  double seconds = atof(argv[4]);
  int size = atoi(argv[5]);
  int forged = strcmp(argv[6], "random") != 0;
  int nsockets = argc > 7 ? atoi(argv[7]) : 16;
  if (size < 14 || size > 65000 || rate <= 0 || nsockets < 1 || nsockets > MAX_SOCKETS) {
    fprintf(stderr, "bad arguments\n");
    return 2;
  }
  uint8_t sender[6] = {0};
  if (forged) {
    if (strlen(argv[6]) != 12) {
      fprintf(stderr, "sender must be 12 hex digits\n");
      return 2;
    }
    for (int i = 0; i < 6; i++) {
      char byte[3] = {argv[6][2 * i], argv[6][2 * i + 1], 0};
      sender[i] = (uint8_t)strtoul(byte, NULL, 16);
    }
  }
  struct sockaddr_in dst = {0};
  dst.sin_family = AF_INET;
  dst.sin_port = htons((uint16_t)dst_port);
  if (inet_pton(AF_INET, dst_ip, &dst.sin_addr) != 1) {
    fprintf(stderr, "bad address %s\n", dst_ip);
    return 2;
  }
  int sockets[MAX_SOCKETS];
  for (int i = 0; i < nsockets; i++) {
    sockets[i] = socket(AF_INET, SOCK_DGRAM, 0);
    if (sockets[i] < 0 || connect(sockets[i], (struct sockaddr *)&dst, sizeof dst) != 0) {
      perror("socket/connect");
      return 1;
    }
    int sndbuf = 4 << 20;
    setsockopt(sockets[i], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  }
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);

  uint64_t seed = 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid() ^ (uint64_t)time(NULL);
  uint8_t *payloads = malloc((size_t)VARIANTS * size);
  for (size_t i = 0; i < (size_t)VARIANTS * size; i++) payloads[i] = (uint8_t)xorshift(&seed);
  if (forged)
    for (int v = 0; v < VARIANTS; v++) memcpy(payloads + (size_t)v * size, sender, 6);

  struct mmsghdr msgs[BATCH];
  struct iovec iovs[BATCH];
  uint64_t counter = xorshift(&seed) >> 16;
  uint64_t sent = 0;
  unsigned variant = 0;
  int next_socket = 0;
  double start = now_s();
  double end = start + seconds;
  while (!stop_requested) {
    double t = now_s();
    if (t >= end) break;
    uint64_t due = (uint64_t)((t - start) * rate);
    if (sent >= due) {
      struct timespec pause = {0, 200 * 1000};
      nanosleep(&pause, NULL);
      continue;
    }
    int n = (int)(due - sent < BATCH ? due - sent : BATCH);
    for (int i = 0; i < n; i++) {
      uint8_t *p = payloads + (size_t)(variant++ % VARIANTS) * size;
      if (forged) {
        // A fresh counter per datagram, so every forgery passes the replay check and costs a decryption.
        counter++;
        for (int b = 0; b < 8; b++) p[6 + b] = (uint8_t)(counter >> (56 - 8 * b));
      }
      iovs[i].iov_base = p;
      iovs[i].iov_len = (size_t)size;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(sockets[next_socket], msgs, (unsigned)n, 0);
    next_socket = (next_socket + 1) % nsockets;
    if (r > 0) sent += (uint64_t)r;
    else if (r < 0 && errno != EAGAIN && errno != ENOBUFS && errno != ECONNREFUSED && errno != EINTR) {
      perror("sendmmsg");
      break;
    }
  }
  printf("SENT %llu %.3f\n", (unsigned long long)sent, now_s() - start);
  fflush(stdout);
  return 0;
}
