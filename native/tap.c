// weave_tap: the minimal N-API binding for Linux TAP devices (open, poll-driven batch read, batch write).
//
// Exports (all take the handle returned by open as first argument, except open):
//   open(name, { mtu?, mac?, offload? })  -> { handle, name, mac: Buffer(6), mtu, offload, udpOffload }
//                                            throws Error{errno, code, syscall}
//       offload: IFF_VNET_HDR with checksum and TSO4/6 offloads, plus USO4/6 where the kernel has them (6.2 and
//       later; udpOffload says whether it took them). Every read slot then starts with the 10-byte virtio_net_hdr
//       (the frame at +10); a partial checksum of a plain frame is completed before delivery, so only super-frames
//       (gso_type 1 or 4 for TCP, 5 for UDP) keep theirs. Every write is prefixed with a header (zero unless given).
//   startReading(handle, batch, slot, cb) -> { buffer: ArrayBuffer, lengths: Uint32Array }
//       cb(count, errno) is called once per wakeup; frame i is buffer[i*slot, i*slot + lengths[i]).
//       The buffer and lengths are reused for every call: frames are valid only during the call.
//   stopReading(handle)
//   write(handle, frame)                  -> bytes written, or -errno (-EAGAIN: the device queue is full)
//   writeBatch(handle, frames[], headers?) -> frames written; stops at the first failure (see lastError)
//       headers: with offload, a Uint8Array of 10 bytes per frame (virtio_net_hdr, host order); zero headers without
//   lastError(handle)                     -> errno of the last failed write (0 if none)
//   ref(handle) / unref(handle)           -> whether an active reader keeps the event loop alive
//   close(handle)                         -> idempotent; stops polling and closes the fd (the kernel deletes the TAP)
//   truncated(handle)                     -> frames read that did not fit a slot (dropped)
//   setDontFragment(fd, on, ipv6)         -> 0 or -errno
//   openUdp(host, port, ipv6, bufferBytes, remoteHost, remotePort)
//                                         -> a bound (and, with a remote host, connected) SO_REUSEPORT UDP fd, or -errno
//   udpAddress(host, port, ipv6)          -> the socket address as bytes (for sendBatch), or null when not an IP literal
//   sendBatch(fd, address, packets[], lengths, count)
//                                         -> datagrams sent with one sendmmsg (the buffers may be reused at once),
//                                            or -errno for the first one (-EAGAIN: the socket buffer is full)
//   adoptUdp(fd)                          -> a handle that reads UDP socket fd's datagrams (through a duplicate fd, so
//       libuv's own watcher of fd, which still sends, never shares an epoll registration with ours). startReading on
//       it receives with one recvmmsg per wakeup: datagram i in slot i, lengths[i] = 0 for one cut short (dropped,
//       counted by truncated). startReading's optional fifth argument, an area returned by an earlier startReading,
//       lets many readers share one buffer (their callbacks never overlap: one thread).
#define _GNU_SOURCE  // sendmmsg, recvmmsg
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <linux/if_tun.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define VNET_HDR_BYTES 10  // struct virtio_net_hdr (no num_buffers)
#define VNET_F_NEEDS_CSUM 1
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20  // linux/if_tun.h of kernels before 6.2 lacks the UDP segmentation offloads
#define TUN_F_USO6 0x40
#endif

#define MAX_BATCH 1024
#define MAX_SEND_BATCH 64
#define MAX_RECV_BATCH 64

typedef struct tap {
  int fd;
  napi_env env;
  uv_poll_t poll;
  int poll_inited;   // uv_poll_init done (poll must be uv_close'd before free)
  int poll_closed;   // uv_close callback ran
  int polling;       // uv_poll_start active
  int refd;          // user wants the reader to keep the loop alive
  int finalized;     // the JS handle was garbage-collected
  int hook;          // async env cleanup hook registered (hook_handle valid)
  int torn_down;     // the env is being torn down
  napi_async_cleanup_hook_handle hook_handle;
  napi_ref callback; // reader callback
  napi_ref buffer;   // the reused ArrayBuffer (keeps `data` alive)
  napi_ref lengths;  // the reused Uint32Array
  napi_async_context async;
  uint8_t* data;
  uint32_t* lens;
  uint32_t batch;
  uint32_t slot;
  int last_errno;
  int vnet;             // IFF_VNET_HDR: reads and writes carry a virtio_net_hdr
  int udp;              // a UDP socket (adoptUdp): reads are recvmmsg
  int delivering;       // inside the reader callback
  int release_pending;  // stopReading/close ran inside the callback: release the references after it
  double truncated;
} tap_t;

#define CHECK(call)                                                        \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      napi_throw_error(env, NULL, "weave_tap: N-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static const char* errno_code(int e) {
  switch (e) {
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EEXIST: return "EEXIST";
    case ENOTTY: return "ENOTTY";
    case EAGAIN: return "EAGAIN";
    case EIO: return "EIO";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    default: return "EUNKNOWN";
  }
}

// Throws Error(message) with .errno (positive), .code ('EPERM'...) and .syscall.
static void throw_errno(napi_env env, int e, const char* syscall, const char* what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s (%s)", what, strerror(e), syscall);
  napi_value message, code, error, num, sc;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_string_utf8(env, errno_code(e), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, e, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  napi_throw(env, error);
}

static void free_if_done(tap_t* t) {
  if (t->finalized && (!t->poll_inited || t->poll_closed)) free(t);
}

// The async cleanup hook stays registered until the poll handle is closed (or there is none), so that when an
// environment (a worker) is torn down, Node waits for our close callback before it unloads this addon.
static void release_hook(tap_t* t) {
  if (t->hook) {
    t->hook = 0;
    napi_remove_async_cleanup_hook(t->hook_handle);
  }
}

static void on_poll_closed(uv_handle_t* h) {
  tap_t* t = (tap_t*)h->data;
  t->poll_closed = 1;
  release_hook(t);
  free_if_done(t);
}

// Releases the JS references of the reader (deferred while the reader callback runs; skipped once the env is
// being torn down: it releases them itself).
static void release_reader(tap_t* t) {
  if (t->delivering) {
    t->release_pending = 1;
    t->data = NULL;
    t->lens = NULL;
    return;
  }
  if (!t->torn_down) {
    if (t->callback) napi_delete_reference(t->env, t->callback);
    if (t->buffer) napi_delete_reference(t->env, t->buffer);
    if (t->lengths) napi_delete_reference(t->env, t->lengths);
    if (t->async) napi_async_destroy(t->env, t->async);
  }
  t->callback = t->buffer = t->lengths = NULL;
  t->async = NULL;
  t->data = NULL;
  t->lens = NULL;
}

// Stops polling and closes the fd; idempotent.
static void tap_close(tap_t* t) {
  if (t->poll_inited && !uv_is_closing((uv_handle_t*)&t->poll)) {
    uv_poll_stop(&t->poll);
    t->polling = 0;
    uv_close((uv_handle_t*)&t->poll, on_poll_closed);
  }
  if (t->fd >= 0) {
    close(t->fd);
    t->fd = -1;
  }
  release_reader(t);
  if (!t->poll_inited || t->poll_closed) release_hook(t);
}

static void env_teardown(napi_async_cleanup_hook_handle handle, void* arg) {
  (void)handle;
  tap_t* t = (tap_t*)arg;
  t->torn_down = 1;
  tap_close(t);
}

static void finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  tap_t* t = (tap_t*)data;
  tap_close(t);
  t->finalized = 1;
  free_if_done(t);
}

static tap_t* get_tap(napi_env env, napi_value v) {
  void* p = NULL;
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_external || napi_get_value_external(env, v, &p) != napi_ok ||
      p == NULL) {
    napi_throw_type_error(env, NULL, "weave_tap: expected a TAP handle");
    return NULL;
  }
  return (tap_t*)p;
}

// A handle owning `fd` (closed here when the handle cannot be made), wrapped in the JS external `*handle`, with the
// env cleanup hook registered; NULL with a pending exception on failure.
static tap_t* new_tap(napi_env env, int fd, napi_value* handle) {
  tap_t* t = (tap_t*)calloc(1, sizeof *t);
  if (!t) {
    close(fd);
    napi_throw_error(env, "ENOMEM", "weave_tap: out of memory");
    return NULL;
  }
  t->fd = fd;
  t->env = env;
  t->refd = 1;
  if (napi_create_external(env, t, finalize, NULL, handle) != napi_ok) {
    close(fd);
    free(t);
    napi_throw_error(env, NULL, "weave_tap: napi_create_external failed");
    return NULL;
  }
  if (napi_add_async_cleanup_hook(env, env_teardown, t, &t->hook_handle) == napi_ok) t->hook = 1;
  return t;
}

// open(name: string, options: { mtu?: number, mac?: Uint8Array(6) })
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ];
  size_t name_len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "weave_tap.open: name must be a string");
    return NULL;
  }
  int32_t mtu = 0;
  bool offload = false;
  uint8_t* mac = NULL;
  size_t mac_len = 0;
  if (argc >= 2) {
    napi_valuetype type;
    CHECK(napi_typeof(env, argv[1], &type));
    if (type == napi_object) {
      bool has;
      napi_value v;
      CHECK(napi_has_named_property(env, argv[1], "mtu", &has));
      if (has) {
        CHECK(napi_get_named_property(env, argv[1], "mtu", &v));
        CHECK(napi_typeof(env, v, &type));
        if (type != napi_undefined && napi_get_value_int32(env, v, &mtu) != napi_ok) {
          napi_throw_type_error(env, NULL, "weave_tap.open: mtu must be a number");
          return NULL;
        }
      }
      CHECK(napi_has_named_property(env, argv[1], "offload", &has));
      if (has) {
        CHECK(napi_get_named_property(env, argv[1], "offload", &v));
        CHECK(napi_typeof(env, v, &type));
        if (type != napi_undefined && napi_get_value_bool(env, v, &offload) != napi_ok) {
          napi_throw_type_error(env, NULL, "weave_tap.open: offload must be a boolean");
          return NULL;
        }
      }
      CHECK(napi_has_named_property(env, argv[1], "mac", &has));
      if (has) {
        CHECK(napi_get_named_property(env, argv[1], "mac", &v));
        CHECK(napi_typeof(env, v, &type));
        if (type != napi_undefined) {
          bool is_ta = false;
          napi_typedarray_type tt;
          CHECK(napi_is_typedarray(env, v, &is_ta));
          if (is_ta) CHECK(napi_get_typedarray_info(env, v, &tt, &mac_len, (void**)&mac, NULL, NULL));
          if (!is_ta || tt != napi_uint8_array || mac_len != 6) {
            napi_throw_type_error(env, NULL, "weave_tap.open: mac must be a 6-byte Uint8Array");
            return NULL;
          }
        }
      }
    }
  }

  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    throw_errno(env, errno, "open", "cannot open /dev/net/tun");
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, name_len < IFNAMSIZ - 1 ? name_len : IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    throw_errno(env, e, "ioctl(TUNSETIFF)", "cannot create the TAP device");
    return NULL;
  }
  bool udp_offload = false;
  if (offload) {
    // The kernel may then hand us TCP (and, with USO, UDP) super-frames of up to 64 KiB with a partial checksum, and
    // takes them back. Kernels before 6.2 refuse the USO bits with EINVAL: then TCP only.
    int hdr = VNET_HDR_BYTES;
    const unsigned long tcp = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    const char* what = NULL;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) what = "ioctl(TUNSETVNETHDRSZ)";
    else if (ioctl(fd, TUNSETOFFLOAD, tcp | TUN_F_USO4 | TUN_F_USO6) == 0) udp_offload = true;
    else if (errno != EINVAL || ioctl(fd, TUNSETOFFLOAD, tcp) < 0) what = "ioctl(TUNSETOFFLOAD)";
    if (what) {
      int e = errno;
      close(fd);
      throw_errno(env, e, what, "cannot enable TAP offloads");
      return NULL;
    }
  }
  char actual[IFNAMSIZ];
  memcpy(actual, ifr.ifr_name, IFNAMSIZ);
  actual[IFNAMSIZ - 1] = 0;

  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
    int e = errno;
    close(fd);
    throw_errno(env, e, "fcntl(O_NONBLOCK)", "cannot make the TAP fd non-blocking");
    return NULL;
  }

  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    int e = errno;
    close(fd);
    throw_errno(env, e, "socket", "cannot open a control socket");
    return NULL;
  }
  const char* failed = NULL;
  if (mac) {
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, actual, IFNAMSIZ);
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
    if (ioctl(sock, SIOCSIFHWADDR, &ifr) < 0) failed = "ioctl(SIOCSIFHWADDR)";
  }
  if (!failed && mtu > 0) {
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, actual, IFNAMSIZ);
    ifr.ifr_mtu = mtu;
    if (ioctl(sock, SIOCSIFMTU, &ifr) < 0) failed = "ioctl(SIOCSIFMTU)";
  }
  if (!failed) {
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, actual, IFNAMSIZ);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) {
      failed = "ioctl(SIOCGIFFLAGS)";
    } else {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) failed = "ioctl(SIOCSIFFLAGS)";
    }
  }
  uint8_t hw[6];
  int actual_mtu = 0;
  if (!failed) {
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, actual, IFNAMSIZ);
    if (ioctl(sock, SIOCGIFHWADDR, &ifr) < 0) failed = "ioctl(SIOCGIFHWADDR)";
    else memcpy(hw, ifr.ifr_hwaddr.sa_data, 6);
  }
  if (!failed) {
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, actual, IFNAMSIZ);
    if (ioctl(sock, SIOCGIFMTU, &ifr) < 0) failed = "ioctl(SIOCGIFMTU)";
    else actual_mtu = ifr.ifr_mtu;
  }
  if (failed) {
    int e = errno;
    close(sock);
    close(fd);
    throw_errno(env, e, failed, "cannot configure the TAP device");
    return NULL;
  }
  close(sock);

  napi_value result, handle, v;
  tap_t* t = new_tap(env, fd, &handle);
  if (!t) return NULL;
  t->vnet = offload ? 1 : 0;
  CHECK(napi_create_object(env, &result));
  CHECK(napi_set_named_property(env, result, "handle", handle));
  CHECK(napi_create_string_utf8(env, actual, NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, result, "name", v));
  void* macp;
  CHECK(napi_create_buffer_copy(env, 6, hw, &macp, &v));
  CHECK(napi_set_named_property(env, result, "mac", v));
  CHECK(napi_create_int32(env, actual_mtu, &v));
  CHECK(napi_set_named_property(env, result, "mtu", v));
  CHECK(napi_get_boolean(env, offload, &v));
  CHECK(napi_set_named_property(env, result, "offload", v));
  CHECK(napi_get_boolean(env, udp_offload, &v));
  CHECK(napi_set_named_property(env, result, "udpOffload", v));
  return result;
}

// The Internet checksum of a partially checksummed frame (virtio NEEDS_CSUM): the one's complement sum from `start`
// to the end, whose checksum field already holds the pseudo-header sum, stored at start + offset. 0 or -1 when the
// header points outside the frame (the frame is then left as it is).
static int complete_checksum(uint8_t* frame, size_t len, size_t start, size_t offset) {
  if (start >= len || start + offset + 2 > len) return -1;
  uint64_t sum = 0;
  const uint8_t* p = frame + start;
  size_t n = len - start;
  while (n >= 2) {
    sum += (uint32_t)((p[0] << 8) | p[1]);
    p += 2;
    n -= 2;
  }
  if (n) sum += (uint32_t)(p[0] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  uint16_t c = (uint16_t)~sum;
  if (c == 0) c = 0xffff;  // as the kernel does (a UDP checksum of 0 means "none"; TCP accepts either)
  frame[start + offset] = (uint8_t)(c >> 8);
  frame[start + offset + 1] = (uint8_t)(c & 0xff);
  return 0;
}

// Calls the reader callback with (count, errno) inside a callback scope (microtasks run after it).
static void deliver(tap_t* t, uint32_t count, int err) {
  napi_env env = t->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[2], ret;
  if (t->callback && napi_get_reference_value(env, t->callback, &cb) == napi_ok && cb) {
    napi_get_global(env, &recv);  // napi_make_callback needs an object receiver
    napi_create_uint32(env, count, &argv[0]);
    napi_create_int32(env, err, &argv[1]);
    t->delivering = 1;
    napi_status s = napi_make_callback(env, t->async, recv, cb, 2, argv, &ret);
    t->delivering = 0;
    if (t->release_pending) {
      t->release_pending = 0;
      release_reader(t);
    }
    if (s == napi_pending_exception) {
      napi_value exc;
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

// One recvmmsg of up to `batch` datagrams, each into its own slot (level-triggered: the poll fires again while
// more wait). An ICMP error queued on a connected socket (ECONNREFUSED…) fails one call and is then cleared: it is
// not a reason to stop reading, so the read is retried once.
static void read_datagrams(tap_t* t, uint32_t* count, int* err) {
  struct mmsghdr msgs[MAX_RECV_BATCH];
  struct iovec iovs[MAX_RECV_BATCH];
  uint32_t n = t->batch < MAX_RECV_BATCH ? t->batch : MAX_RECV_BATCH;
  for (uint32_t i = 0; i < n; i++) {
    iovs[i].iov_base = t->data + (size_t)i * t->slot;
    iovs[i].iov_len = t->slot;
    memset(&msgs[i], 0, sizeof msgs[i]);
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int r = -1;
  for (int attempt = 0; attempt < 3; attempt++) {
    r = recvmmsg(t->fd, msgs, n, MSG_DONTWAIT, NULL);
    if (r >= 0 || (errno != EINTR && errno != ECONNREFUSED && errno != EHOSTUNREACH && errno != ENETUNREACH)) break;
  }
  if (r < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNREFUSED && errno != EHOSTUNREACH &&
        errno != ENETUNREACH)
      *err = errno;
    return;
  }
  for (int i = 0; i < r; i++) {
    if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
      t->truncated += 1;
      t->lens[i] = 0;
    } else {
      t->lens[i] = msgs[i].msg_len;
    }
  }
  *count = (uint32_t)r;
}

static void on_readable(uv_poll_t* h, int status, int events) {
  tap_t* t = (tap_t*)h->data;
  if (status < 0) {
    deliver(t, 0, -status);
    return;
  }
  if (!(events & UV_READABLE) || t->fd < 0 || !t->data) return;
  uint32_t count = 0;
  int err = 0;
  if (t->udp) {
    read_datagrams(t, &count, &err);
    if (count > 0 || err) deliver(t, count, err);
    return;
  }
  // Bounded drain: at most `batch` frames per wakeup, then back to the event loop so UDP sockets get their
  // turn; the poll is level-triggered and fires again while frames remain.
  while (count < t->batch) {
    ssize_t n = read(t->fd, t->data + (size_t)count * t->slot, t->slot);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
      break;
    }
    if (n == 0) break;
    if ((uint32_t)n >= t->slot) {  // may have been cut: never hand out a partial frame
      t->truncated += 1;
      continue;
    }
    if (t->vnet) {
      uint8_t* h = t->data + (size_t)count * t->slot;
      if (n < VNET_HDR_BYTES) continue;
      size_t len = (size_t)n - VNET_HDR_BYTES;
      if (h[1] == 0 && (h[0] & VNET_F_NEEDS_CSUM)) {
        // A plain frame with a partial checksum: complete it here, so only super-frames carry offload state.
        complete_checksum(h + VNET_HDR_BYTES, len, (size_t)(h[6] | (h[7] << 8)), (size_t)(h[8] | (h[9] << 8)));
        h[0] = 0;
      }
      t->lens[count++] = (uint32_t)len;
      continue;
    }
    t->lens[count++] = (uint32_t)n;
  }
  if (count > 0 || err) deliver(t, count, err);
}

// startReading(handle, batch, slot, callback) -> { buffer, lengths }
static napi_value js_start_reading(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "weave_tap.startReading(handle, batch, slot, callback)");
    return NULL;
  }
  tap_t* t = get_tap(env, argv[0]);
  if (!t) return NULL;
  if (t->fd < 0) {
    throw_errno(env, EBADF, "startReading", "the TAP device is closed");
    return NULL;
  }
  if (t->callback) {
    napi_throw_error(env, NULL, "weave_tap.startReading: already reading");
    return NULL;
  }
  uint32_t batch, slot;
  napi_valuetype type;
  CHECK(napi_get_value_uint32(env, argv[1], &batch));
  CHECK(napi_get_value_uint32(env, argv[2], &slot));
  CHECK(napi_typeof(env, argv[3], &type));
  if (batch < 1 || batch > MAX_BATCH || slot < 64 || slot > (1u << 20) || type != napi_function) {
    napi_throw_range_error(env, NULL, "weave_tap.startReading: batch 1..1024, slot 64..1 MiB, callback a function");
    return NULL;
  }
  napi_value ab, lengths_ab, lengths, result, resource_name;
  void* data = NULL;
  void* lens = NULL;
  napi_valuetype shared_type = napi_undefined;
  if (argc >= 5) CHECK(napi_typeof(env, argv[4], &shared_type));
  if (shared_type == napi_object) {
    // Another reader's area: used when it is big enough for this reader's batch and slot.
    bool is_ab = false, is_ta = false;
    size_t ab_len = 0, n = 0;
    napi_typedarray_type lt = napi_int8_array;
    if (napi_get_named_property(env, argv[4], "buffer", &ab) != napi_ok || napi_is_arraybuffer(env, ab, &is_ab) != napi_ok || !is_ab ||
        napi_get_arraybuffer_info(env, ab, &data, &ab_len) != napi_ok ||
        napi_get_named_property(env, argv[4], "lengths", &lengths) != napi_ok || napi_is_typedarray(env, lengths, &is_ta) != napi_ok ||
        !is_ta || napi_get_typedarray_info(env, lengths, &lt, &n, &lens, NULL, NULL) != napi_ok || lt != napi_uint32_array ||
        ab_len < (size_t)batch * slot || n < batch) {
      napi_throw_range_error(env, NULL, "weave_tap.startReading: the shared area is not { buffer, lengths } of this batch and slot");
      return NULL;
    }
  } else {
    CHECK(napi_create_arraybuffer(env, (size_t)batch * slot, &data, &ab));
    CHECK(napi_create_arraybuffer(env, (size_t)batch * 4, &lens, &lengths_ab));
    CHECK(napi_create_typedarray(env, napi_uint32_array, batch, lengths_ab, 0, &lengths));
  }
  if (!t->poll_inited) {
    uv_loop_t* loop;
    CHECK(napi_get_uv_event_loop(env, &loop));
    int r = uv_poll_init(loop, &t->poll, t->fd);
    if (r < 0) {
      throw_errno(env, -r, "uv_poll_init", "cannot poll the TAP fd");
      return NULL;
    }
    t->poll.data = t;
    t->poll_inited = 1;
  }
  CHECK(napi_create_string_utf8(env, "WeaveTapRead", NAPI_AUTO_LENGTH, &resource_name));
  CHECK(napi_async_init(env, NULL, resource_name, &t->async));
  CHECK(napi_create_reference(env, argv[3], 1, &t->callback));
  CHECK(napi_create_reference(env, ab, 1, &t->buffer));
  CHECK(napi_create_reference(env, lengths, 1, &t->lengths));
  t->data = (uint8_t*)data;
  t->lens = (uint32_t*)lens;
  t->batch = batch;
  t->slot = slot;
  int r = uv_poll_start(&t->poll, UV_READABLE, on_readable);
  if (r < 0) {
    release_reader(t);
    throw_errno(env, -r, "uv_poll_start", "cannot poll the TAP fd");
    return NULL;
  }
  t->polling = 1;
  if (t->refd) uv_ref((uv_handle_t*)&t->poll);
  else uv_unref((uv_handle_t*)&t->poll);
  CHECK(napi_create_object(env, &result));
  CHECK(napi_set_named_property(env, result, "buffer", ab));
  CHECK(napi_set_named_property(env, result, "lengths", lengths));
  return result;
}

static napi_value one_arg(napi_env env, napi_callback_info info, tap_t** out) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "weave_tap: expected a TAP handle");
    return NULL;
  }
  *out = get_tap(env, argv[0]);
  return argv[0];
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value js_stop_reading(napi_env env, napi_callback_info info) {
  tap_t* t = NULL;
  if (!one_arg(env, info, &t) || !t) return NULL;
  if (t->polling) {
    uv_poll_stop(&t->poll);
    t->polling = 0;
  }
  release_reader(t);
  return undefined(env);
}

static napi_value js_ref(napi_env env, napi_callback_info info) {
  tap_t* t = NULL;
  if (!one_arg(env, info, &t) || !t) return NULL;
  t->refd = 1;
  if (t->poll_inited && !uv_is_closing((uv_handle_t*)&t->poll)) uv_ref((uv_handle_t*)&t->poll);
  return undefined(env);
}

static napi_value js_unref(napi_env env, napi_callback_info info) {
  tap_t* t = NULL;
  if (!one_arg(env, info, &t) || !t) return NULL;
  t->refd = 0;
  if (t->poll_inited && !uv_is_closing((uv_handle_t*)&t->poll)) uv_unref((uv_handle_t*)&t->poll);
  return undefined(env);
}

// setDontFragment(fd, on, ipv6): IP_MTU_DISCOVER = DO (every datagram carries DF and is never fragmented
// locally) or WANT (the default) on a UDP socket's fd. Node's dgram has no option for it, and a data
// plane that must not send fragments needs it.
static napi_value js_set_dont_fragment(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  bool on, ipv6;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_bool(env, argv[1], &on) != napi_ok ||
      napi_get_value_bool(env, argv[2], &ipv6) != napi_ok) {
    napi_throw_type_error(env, NULL, "weave_tap.setDontFragment(fd, on, ipv6)");
    return NULL;
  }
  int r = ipv6 ? setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &(int){on ? IPV6_PMTUDISC_DO : IPV6_PMTUDISC_WANT}, sizeof(int))
               : setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &(int){on ? IP_PMTUDISC_DO : IP_PMTUDISC_WANT}, sizeof(int));
  napi_value result;
  CHECK(napi_create_int32(env, r == 0 ? 0 : -errno, &result));
  return result;
}

// Sizes one socket buffer: the plain option is capped by net.core.[rw]mem_max, so when the kernel granted less
// than asked (it reports double the size it was given), the FORCE variant (CAP_NET_ADMIN) is tried as well.
static void size_buffer(int fd, int option, int force_option, int bytes) {
  setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof bytes);
  int got = 0;
  socklen_t len = sizeof got;
  if (getsockopt(fd, SOL_SOCKET, option, &got, &len) == 0 && got < 2 * bytes) {
    setsockopt(fd, SOL_SOCKET, force_option, &bytes, sizeof bytes);  // EPERM without CAP_NET_ADMIN: keep what we got
  }
}

static int fill_address(const char* host, int port, int ipv6, struct sockaddr_storage* out, socklen_t* len) {
  memset(out, 0, sizeof *out);
  if (ipv6) {
    struct sockaddr_in6* a = (struct sockaddr_in6*)out;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) {
      // An IPv4 remote for a dual-stack socket is written IPv4-mapped.
      struct in_addr v4;
      if (inet_pton(AF_INET, host, &v4) != 1) return -EINVAL;
      a->sin6_addr.s6_addr[10] = 0xff;
      a->sin6_addr.s6_addr[11] = 0xff;
      memcpy(&a->sin6_addr.s6_addr[12], &v4, 4);
    }
    *len = sizeof *a;
  } else {
    struct sockaddr_in* a = (struct sockaddr_in*)out;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return -EINVAL;
    *len = sizeof *a;
  }
  return 0;
}

// openUdp(host, port, ipv6, bufferBytes, remoteHost, remotePort): a UDP socket with SO_REUSEPORT bound to
// host:port, so that several sockets of this process share one port: the kernel hands a datagram to the socket
// connected to its sender, else to the unconnected one. With a remoteHost (not null) the socket is connected
// to it right after bind. Buffers are sized to bufferBytes (0 = leave). Returns the fd, or -errno.
static napi_value js_open_udp(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char host[64], remote[64];
  size_t host_len = 0, remote_len = 0;
  int32_t port, buffer_bytes, remote_port = 0;
  bool ipv6;
  napi_valuetype remote_type = napi_null;
  if (argc < 6 || napi_get_value_string_utf8(env, argv[0], host, sizeof host, &host_len) != napi_ok ||
      napi_get_value_int32(env, argv[1], &port) != napi_ok || napi_get_value_bool(env, argv[2], &ipv6) != napi_ok ||
      napi_get_value_int32(env, argv[3], &buffer_bytes) != napi_ok || napi_typeof(env, argv[4], &remote_type) != napi_ok ||
      (remote_type != napi_null && remote_type != napi_string) ||
      (remote_type == napi_string && (napi_get_value_string_utf8(env, argv[4], remote, sizeof remote, &remote_len) != napi_ok ||
                                      napi_get_value_int32(env, argv[5], &remote_port) != napi_ok))) {
    napi_throw_type_error(env, NULL, "weave_tap.openUdp(host, port, ipv6, bufferBytes, remoteHost|null, remotePort)");
    return NULL;
  }
  int result;
  struct sockaddr_storage local_addr, remote_addr;
  socklen_t local_len = 0, remote_len_sa = 0;
  if (port < 0 || port > 65535 || host_len >= sizeof host - 1 || remote_len >= sizeof remote - 1 ||
      (remote_type == napi_string && (remote_port <= 0 || remote_port > 65535))) {
    result = -EINVAL;
  } else if ((result = fill_address(host, port, ipv6, &local_addr, &local_len)) == 0 &&
             (remote_type != napi_string || (result = fill_address(remote, remote_port, ipv6, &remote_addr, &remote_len_sa)) == 0)) {
    int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      result = -errno;
    } else {
      int one = 1;
      if (buffer_bytes > 0) {
        size_buffer(fd, SO_RCVBUF, SO_RCVBUFFORCE, buffer_bytes);
        size_buffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, buffer_bytes);
      }
      if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
          bind(fd, (struct sockaddr*)&local_addr, local_len) != 0 ||
          (remote_type == napi_string && connect(fd, (struct sockaddr*)&remote_addr, remote_len_sa) != 0)) {
        result = -errno;
        close(fd);
      } else {
        result = fd;
      }
    }
  }
  napi_value v;
  CHECK(napi_create_int32(env, result, &v));
  return v;
}

static int frame_bytes(napi_env env, napi_value v, void** data, size_t* len);

// udpAddress(host, port, ipv6): the sockaddr for sendBatch, or null when host is not an IP literal.
static napi_value js_udp_address(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char host[64];
  size_t host_len = 0;
  int32_t port;
  bool ipv6;
  if (argc < 3 || napi_get_value_string_utf8(env, argv[0], host, sizeof host, &host_len) != napi_ok ||
      napi_get_value_int32(env, argv[1], &port) != napi_ok || napi_get_value_bool(env, argv[2], &ipv6) != napi_ok) {
    napi_throw_type_error(env, NULL, "weave_tap.udpAddress(host, port, ipv6)");
    return NULL;
  }
  struct sockaddr_storage addr;
  socklen_t len = 0;
  napi_value v;
  if (port <= 0 || port > 65535 || host_len >= sizeof host - 1 || fill_address(host, port, ipv6, &addr, &len) != 0) {
    CHECK(napi_get_null(env, &v));
    return v;
  }
  void* data;
  CHECK(napi_create_buffer_copy(env, len, &addr, &data, &v));
  return v;
}

// sendBatch(fd, address, packets[], lengths, count): sends packets[i][0, lengths[i]) for i < count to one
// address with sendmmsg. The kernel copies each datagram before returning, so the caller may reuse them.
static napi_value js_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t count;
  void* addr = NULL;
  size_t addr_len = 0;
  bool is_array = false;
  napi_typedarray_type lt;
  size_t lengths_n = 0;
  void* lengths_data = NULL;
  bool lengths_ok = false;
  if (argc >= 5) napi_is_typedarray(env, argv[3], &lengths_ok);
  if (argc < 5 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || !frame_bytes(env, argv[1], &addr, &addr_len) ||
      napi_is_array(env, argv[2], &is_array) != napi_ok || !is_array || !lengths_ok ||
      napi_get_typedarray_info(env, argv[3], &lt, &lengths_n, &lengths_data, NULL, NULL) != napi_ok || lt != napi_uint32_array ||
      napi_get_value_uint32(env, argv[4], &count) != napi_ok || count > lengths_n || addr_len > sizeof(struct sockaddr_storage)) {
    napi_throw_type_error(env, NULL, "weave_tap.sendBatch(fd, address, packets[], lengths: Uint32Array, count)");
    return NULL;
  }
  const uint32_t* lengths = lengths_data;
  struct mmsghdr msgs[MAX_SEND_BATCH];
  struct iovec iovs[MAX_SEND_BATCH];
  uint32_t sent = 0;
  int result = 0;
  while (sent < count) {
    uint32_t n = count - sent > MAX_SEND_BATCH ? MAX_SEND_BATCH : count - sent;
    for (uint32_t i = 0; i < n; i++) {
      napi_value p;
      void* data;
      size_t len;
      CHECK(napi_get_element(env, argv[2], sent + i, &p));
      if (!frame_bytes(env, p, &data, &len) || lengths[sent + i] > len) {
        napi_throw_type_error(env, NULL, "weave_tap.sendBatch: packets must be Uint8Arrays at least lengths[i] long");
        return NULL;
      }
      iovs[i].iov_base = data;
      iovs[i].iov_len = lengths[sent + i];
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_name = addr;
      msgs[i].msg_hdr.msg_namelen = (socklen_t)addr_len;
      msgs[i].msg_hdr.msg_iov = &iovs[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int r = sendmmsg(fd, msgs, n, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      result = -errno;
      break;
    }
    sent += (uint32_t)r;
    if ((uint32_t)r < n) break;  // the socket buffer filled: the caller queues the rest
  }
  napi_value v;
  CHECK(napi_create_int32(env, sent > 0 || result == 0 ? (int32_t)sent : result, &v));
  return v;
}

// adoptUdp(fd): a reader handle over dup(fd); close(handle) closes the duplicate only.
static napi_value js_adopt_udp(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "weave_tap.adoptUdp(fd)");
    return NULL;
  }
  int type = 0;
  socklen_t type_len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) != 0 || type != SOCK_DGRAM) {
    throw_errno(env, type == 0 ? errno : ENOTSOCK, "getsockopt(SO_TYPE)", "not a datagram socket");
    return NULL;
  }
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    throw_errno(env, errno, "fcntl(F_DUPFD_CLOEXEC)", "cannot duplicate the UDP socket");
    return NULL;
  }
  napi_value handle;
  tap_t* t = new_tap(env, copy, &handle);
  if (!t) return NULL;
  t->udp = 1;
  return handle;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  tap_t* t = NULL;
  if (!one_arg(env, info, &t) || !t) return NULL;
  tap_close(t);
  return undefined(env);
}

static napi_value js_last_error(napi_env env, napi_callback_info info) {
  tap_t* t = NULL;
  if (!one_arg(env, info, &t) || !t) return NULL;
  napi_value v;
  CHECK(napi_create_int32(env, t->last_errno, &v));
  return v;
}

static napi_value js_truncated(napi_env env, napi_callback_info info) {
  tap_t* t = NULL;
  if (!one_arg(env, info, &t) || !t) return NULL;
  napi_value v;
  CHECK(napi_create_double(env, t->truncated, &v));
  return v;
}

static const uint8_t zero_header[VNET_HDR_BYTES] = {0};

// One write() per frame: a TAP device takes exactly one frame per write, never merge them. With offload every frame
// is preceded by its virtio_net_hdr (`header`, or zeros: a complete frame).
static int write_frame(tap_t* t, const void* p, size_t len, const uint8_t* header) {
  for (;;) {
    ssize_t n;
    if (t->vnet) {
      struct iovec iov[2] = {{(void*)(header ? header : zero_header), VNET_HDR_BYTES}, {(void*)p, len}};
      n = writev(t->fd, iov, 2);
      if (n >= VNET_HDR_BYTES) n -= VNET_HDR_BYTES;
    } else {
      n = write(t->fd, p, len);
    }
    if (n >= 0) return (int)n;
    if (errno == EINTR) continue;
    t->last_errno = errno;
    return -errno;
  }
}

static int frame_bytes(napi_env env, napi_value v, void** data, size_t* len) {
  bool is_ta = false;
  napi_typedarray_type tt;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return 0;
  if (napi_get_typedarray_info(env, v, &tt, len, data, NULL, NULL) != napi_ok || tt != napi_uint8_array) return 0;
  return 1;
}

static napi_value js_write(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tap_t* t = argc >= 2 ? get_tap(env, argv[0]) : NULL;
  if (!t) return NULL;
  void* data;
  size_t len;
  if (!frame_bytes(env, argv[1], &data, &len)) {
    napi_throw_type_error(env, NULL, "weave_tap.write: frame must be a Uint8Array");
    return NULL;
  }
  int r = t->fd < 0 ? -EBADF : write_frame(t, data, len, NULL);
  if (t->fd < 0) t->last_errno = EBADF;
  napi_value v;
  CHECK(napi_create_int32(env, r, &v));
  return v;
}

static napi_value js_write_batch(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  tap_t* t = argc >= 2 ? get_tap(env, argv[0]) : NULL;
  if (!t) return NULL;
  uint8_t* headers = NULL;
  size_t headers_len = 0;
  if (argc >= 3) {
    napi_valuetype type;
    CHECK(napi_typeof(env, argv[2], &type));
    if (type != napi_undefined && type != napi_null && !frame_bytes(env, argv[2], (void**)&headers, &headers_len)) {
      napi_throw_type_error(env, NULL, "weave_tap.writeBatch: headers must be a Uint8Array");
      return NULL;
    }
  }
  uint32_t n = 0, written = 0;
  bool is_array = false;
  CHECK(napi_is_array(env, argv[1], &is_array));
  if (!is_array) {
    napi_throw_type_error(env, NULL, "weave_tap.writeBatch: frames must be an array of Uint8Array");
    return NULL;
  }
  CHECK(napi_get_array_length(env, argv[1], &n));
  if (headers && headers_len < (size_t)n * VNET_HDR_BYTES) {
    napi_throw_range_error(env, NULL, "weave_tap.writeBatch: headers must hold 10 bytes per frame");
    return NULL;
  }
  if (t->fd < 0) {
    t->last_errno = EBADF;
  } else {
    for (uint32_t i = 0; i < n; i++) {
      napi_value f;
      void* data;
      size_t len;
      CHECK(napi_get_element(env, argv[1], i, &f));
      if (!frame_bytes(env, f, &data, &len)) {
        napi_throw_type_error(env, NULL, "weave_tap.writeBatch: frames must be an array of Uint8Array");
        return NULL;
      }
      if (write_frame(t, data, len, headers ? headers + (size_t)i * VNET_HDR_BYTES : NULL) < 0) break;  // EAGAIN (queue full) or device down: the rest would fail too
      written++;
    }
  }
  napi_value v;
  CHECK(napi_create_uint32(env, written, &v));
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"startReading", NULL, js_start_reading, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stopReading", NULL, js_stop_reading, NULL, NULL, NULL, napi_enumerable, NULL},
      {"write", NULL, js_write, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeBatch", NULL, js_write_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lastError", NULL, js_last_error, NULL, NULL, NULL, napi_enumerable, NULL},
      {"truncated", NULL, js_truncated, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ref", NULL, js_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unref", NULL, js_unref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setDontFragment", NULL, js_set_dont_fragment, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openUdp", NULL, js_open_udp, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpAddress", NULL, js_udp_address, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendBatch", NULL, js_send_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adoptUdp", NULL, js_adopt_udp, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
