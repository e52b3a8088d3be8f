/* A registry client that costs as little CPU as a client can, for tests/bench/registry.sh.
 *
 * usage: discard-client HOST PORT QUERY BLOBS
 * GETs every blob listed in BLOBS ('REPOSITORY DIGEST SIZE' lines) over one HTTP/1.1 keep-alive
 * connection, checks the status and Content-Length, and discards each body in the kernel (recv
 * with MSG_TRUNC: counted, never copied to user space). It verifies no digest: the point is to
 * leave the CPU to the server under test. Prints the bytes received.
 *
 * C, not Python: on 2 cores a Python client's own CPU held both servers back (measured: 1.53x
 * with it, 1.81x with this one, against the same two servers). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char *what, const char *detail) {
  fprintf(stderr, "discard-client: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

static void send_all(int s, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(s, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) die("sending a request failed", strerror(errno));
    p += k;
    n -= (size_t)k;
  }
}

/* Read exactly the response head into head (NUL-terminated), leaving the body in the socket. */
static void read_head(int s, char *head, size_t cap) {
  for (;;) {
    ssize_t k = recv(s, head, cap - 1, MSG_PEEK);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) die("the server closed the connection before answering", NULL);
    head[k] = 0;
    char *end = strstr(head, "\r\n\r\n");
    if (end) {
      size_t n = (size_t)(end + 4 - head);
      if (recv(s, head, n, MSG_WAITALL) != (ssize_t)n) die("reading a response head failed", strerror(errno));
      head[n] = 0;
      return;
    }
    if ((size_t)k == cap - 1) die("a response head is too large", NULL);
  }
}

int main(int argc, char **argv) {
  if (argc != 5) die("usage: discard-client HOST PORT QUERY BLOBS", NULL);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
  if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) die("not an IPv4 address", argv[1]);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof addr) != 0) die("cannot connect", strerror(errno));
  FILE *blobs = fopen(argv[4], "r");
  if (!blobs) die("cannot open", argv[4]);
  static char sink[4 << 20];
  char repo[512], digest[128], request[1024], head[16384];
  long long size, total = 0;
  while (fscanf(blobs, "%511s %127s %lld", repo, digest, &size) == 3) {
    int n = snprintf(request, sizeof request, "GET /v2/%s/blobs/%s%s HTTP/1.1\r\nHost: %s:%s\r\n\r\n", repo, digest,
                     argv[3], argv[1], argv[2]);
    send_all(s, request, (size_t)n);
    read_head(s, head, sizeof head);
    if (strncmp(head, "HTTP/1.1 200 ", 13) != 0) die(digest, strtok(head, "\r"));
    char *length = strcasestr(head, "\r\ncontent-length:");
    if (!length || atoll(length + 17) != size) die(digest, "Content-Length differs from the manifest's size");
    for (long long left = size; left > 0;) {
      ssize_t k = recv(s, sink, left < (long long)sizeof sink ? (size_t)left : sizeof sink, MSG_TRUNC);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) die(digest, "the connection closed before the body's end");
      left -= k;
    }
    total += size;
  }
  printf("%lld\n", total);
  return 0;
}
