/*
 * podnet: LD_PRELOAD shim the node agent puts under every pod process.
 *
 * A real pod has its own network namespace, so each pod may listen on 0.0.0.0:8080. Our pods are
 * local processes that share the host's network; each gets its own loopback address (its podIP)
 * instead, and this shim turns a bind to the wildcard address (0.0.0.0, or :: for IPv6 sockets)
 * into a bind to that address. The effect is what a pod network gives: several pods listen on the
 * same port, each reachable only at its own podIP.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    const char *pod_ip = getenv("PODNET_POD_IP");
    if (!pod_ip || !addr) return real_bind(fd, addr, len);

    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in mine;
        memcpy(&mine, addr, sizeof mine);
        if (mine.sin_addr.s_addr == htonl(INADDR_ANY) &&
            inet_pton(AF_INET, pod_ip, &mine.sin_addr) == 1)
            return real_bind(fd, (const struct sockaddr *)&mine, sizeof mine);
    } else if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 mine;
        memcpy(&mine, addr, sizeof mine);
        if (memcmp(&mine.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0) {
            /* [::] also means every IPv4 address: keep the pod to its own, as ::ffff:<podIP>. */
            struct in_addr v4;
            if (inet_pton(AF_INET, pod_ip, &v4) == 1) {
                int off = 0;
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
                memset(&mine.sin6_addr, 0, sizeof mine.sin6_addr);
                mine.sin6_addr.s6_addr[10] = 0xff;
                mine.sin6_addr.s6_addr[11] = 0xff;
                memcpy(&mine.sin6_addr.s6_addr[12], &v4, 4);
                return real_bind(fd, (const struct sockaddr *)&mine, sizeof mine);
            }
        }
    }
    return real_bind(fd, addr, len);
}
