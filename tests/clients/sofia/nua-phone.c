/*
 * nua-phone: a minimal phone on Sofia-SIP's NUA (the SIP stack GNOME Calls uses), for
 * tests/clients.rs. It places one call (--dial URI) and hangs up after --talk seconds, or
 * answers the first call it gets; either way it quits after --seconds. Sofia-SIP has no media
 * engine, so the phone sends its own RTP (G.711 mu-law silence, 20 ms) to the address in the
 * remote SDP and counts what comes back.
 *
 * Exit status 0 when the call was established and ended by a BYE (either way) and RTP was
 * both sent and received; 1 otherwise. A summary line goes to stdout.
 *
 *   nua-phone --bind 127.0.0.2:5062 --rtp 43000 [--dial sip:+8610123@127.0.0.1:5060]
 *             [--talk 3] [--seconds 15]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sofia-sip/nua.h>
#include <sofia-sip/soa.h>
#include <sofia-sip/su_tag_io.h>

struct phone {
    su_root_t *root;
    nua_t *nua;
    nua_handle_t *call;
    const char *dial;
    int talk_ms;
    int rtp_fd;
    struct sockaddr_in remote;
    int have_remote;
    int established;
    int ended_by_bye;
    unsigned sent, received;
    unsigned short seq;
    unsigned ts;
    su_timer_t *rtp_timer, *hangup_timer, *deadline;
    int shutting_down;
};

static void shutdown_phone(struct phone *p)
{
    if (p->shutting_down)
        return;
    p->shutting_down = 1;
    nua_shutdown(p->nua);
}

/* The c= address and m=audio port of an SDP body: where our RTP goes. */
static void learn_remote(struct phone *p, const char *sdp)
{
    const char *c = strstr(sdp, "c=IN IP4 ");
    const char *m = strstr(sdp, "m=audio ");
    char ip[64] = {0};
    if (!c || !m)
        return;
    sscanf(c + 9, "%63[0-9.]", ip);
    int port = atoi(m + 8);
    if (port <= 0 || port > 65535)
        return;
    memset(&p->remote, 0, sizeof p->remote);
    p->remote.sin_family = AF_INET;
    p->remote.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, ip, &p->remote.sin_addr) == 1)
        p->have_remote = 1;
}

/* Every 20 ms: one RTP packet out, and whatever arrived counted. */
static void rtp_tick(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
    struct phone *p = (struct phone *)arg;
    unsigned char pkt[12 + 160];
    char buf[2048];
    (void)magic;
    (void)t;
    while (recv(p->rtp_fd, buf, sizeof buf, 0) > 0)
        p->received++;
    if (!p->have_remote || !p->established)
        return;
    memset(pkt, 0xff, sizeof pkt); /* mu-law silence */
    pkt[0] = 0x80;
    pkt[1] = 0; /* PCMU */
    pkt[2] = p->seq >> 8;
    pkt[3] = p->seq & 0xff;
    pkt[4] = p->ts >> 24;
    pkt[5] = (p->ts >> 16) & 0xff;
    pkt[6] = (p->ts >> 8) & 0xff;
    pkt[7] = p->ts & 0xff;
    pkt[8] = 0x50;
    pkt[9] = 0x48;
    pkt[10] = 0x4f;
    pkt[11] = 0x4e;
    if (sendto(p->rtp_fd, pkt, sizeof pkt, 0, (struct sockaddr *)&p->remote,
               sizeof p->remote) > 0)
        p->sent++;
    p->seq++;
    p->ts += 160;
}

static void hangup(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
    struct phone *p = (struct phone *)arg;
    (void)magic;
    (void)t;
    fprintf(stderr, "hanging up\n");
    if (p->call && p->established)
        nua_bye(p->call, TAG_END());
}

static void deadline(su_root_magic_t *magic, su_timer_t *t, su_timer_arg_t *arg)
{
    (void)magic;
    (void)t;
    shutdown_phone((struct phone *)arg);
}

static void on_event(nua_event_t event, int status, char const *phrase, nua_t *nua,
                     nua_magic_t *magic, nua_handle_t *nh, nua_hmagic_t *hmagic,
                     sip_t const *sip, tagi_t tags[])
{
    struct phone *p = (struct phone *)magic;
    (void)nua;
    (void)hmagic;
    (void)sip;
    switch (event) {
    case nua_i_invite:
        if (p->call && p->call != nh) {
            nua_respond(nh, 486, "Busy Here", TAG_END());
            break;
        }
        p->call = nh;
        nua_respond(nh, 200, "OK", TAG_END());
        break;
    case nua_i_state: {
        int state = nua_callstate_init;
        char const *remote_sdp = NULL;
        tl_gets(tags, NUTAG_CALLSTATE_REF(state), SOATAG_REMOTE_SDP_STR_REF(remote_sdp),
                TAG_END());
        fprintf(stderr, "state %d remote sdp %s\n", state, remote_sdp ? "yes" : "no");
        if (remote_sdp)
            learn_remote(p, remote_sdp);
        if (state == nua_callstate_ready && !p->established) {
            p->established = 1;
            printf("established\n");
            fflush(stdout);
            if (p->dial)
                su_timer_set_interval(p->hangup_timer, hangup, p, p->talk_ms);
        }
        if (state == nua_callstate_terminated && p->established)
            shutdown_phone(p);
        break;
    }
    case nua_i_bye:
        p->ended_by_bye = 1;
        break;
    case nua_r_bye:
        if (status >= 200 && status < 300)
            p->ended_by_bye = 1;
        break;
    case nua_r_invite:
        if (status >= 300) {
            fprintf(stderr, "INVITE failed: %d %s\n", status, phrase);
            shutdown_phone(p);
        }
        break;
    case nua_r_shutdown:
        if (status >= 200)
            su_root_break(p->root);
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    struct phone p;
    const char *sip_addr = "127.0.0.2:5062";
    int rtp_port = 43000, seconds = 15;
    char url[128], sdp[512], from[128];
    struct sockaddr_in local;

    memset(&p, 0, sizeof p);
    p.talk_ms = 3000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--bind"))
            sip_addr = argv[i + 1];
        else if (!strcmp(argv[i], "--rtp"))
            rtp_port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dial"))
            p.dial = argv[i + 1];
        else if (!strcmp(argv[i], "--talk"))
            p.talk_ms = atoi(argv[i + 1]) * 1000;
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atoi(argv[i + 1]);
    }

    p.rtp_fd = socket(AF_INET, SOCK_DGRAM, 0);
    memset(&local, 0, sizeof local);
    local.sin_family = AF_INET;
    local.sin_port = htons((unsigned short)rtp_port);
    inet_pton(AF_INET, "127.0.0.2", &local.sin_addr);
    if (p.rtp_fd < 0 ||
        bind(p.rtp_fd, (struct sockaddr *)&local, sizeof local) < 0) {
        perror("rtp socket");
        return 1;
    }
    fcntl(p.rtp_fd, F_SETFL, O_NONBLOCK);

    snprintf(url, sizeof url, "sip:%s;transport=udp", sip_addr);
    snprintf(from, sizeof from, "<sip:1000@%s>", sip_addr);
    snprintf(sdp, sizeof sdp,
             "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\n"
             "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
             rtp_port);

    su_init();
    p.root = su_root_create(&p);
    p.nua = nua_create(p.root, on_event, &p, NUTAG_URL(url), SOATAG_AF(SOA_AF_IP4_ONLY),
                       SOATAG_USER_SDP_STR(sdp), SOATAG_ADDRESS("127.0.0.2"),
                       NUTAG_AUTOACK(1), TAG_END());
    if (!p.nua) {
        fprintf(stderr, "cannot create the NUA on %s\n", url);
        return 1;
    }
    nua_set_params(p.nua, SIPTAG_FROM_STR(from), NUTAG_ENABLEINVITE(1), TAG_END());
    p.rtp_timer = su_timer_create(su_root_task(p.root), 20);
    p.hangup_timer = su_timer_create(su_root_task(p.root), 0);
    p.deadline = su_timer_create(su_root_task(p.root), 0);
    su_timer_set_for_ever(p.rtp_timer, rtp_tick, &p);
    su_timer_set_interval(p.deadline, deadline, &p, seconds * 1000);

    if (p.dial) {
        p.call = nua_handle(p.nua, NULL, SIPTAG_TO_STR(p.dial), TAG_END());
        nua_invite(p.call, SOATAG_USER_SDP_STR(sdp), TAG_END());
    }
    su_root_run(p.root);

    printf("sent=%u received=%u established=%d bye=%d\n", p.sent, p.received, p.established,
           p.ended_by_bye);
    nua_destroy(p.nua);
    su_root_destroy(p.root);
    su_deinit();
    return (p.established && p.ended_by_bye && p.sent > 0 && p.received > 0) ? 0 : 1;
}
