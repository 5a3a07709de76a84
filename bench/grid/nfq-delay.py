#!/usr/bin/env python3
"""Delays every packet of one NFQUEUE queue by a fixed time: netem's `delay`, in user space.

Why: this machine's kernel has no sch_netem (CONFIG_NET_SCH_NETEM is not set, and it has no
module support at all), nor sch_fq (so no BPF earliest-departure-time delay either). It has
NFQUEUE (CONFIG_NETFILTER_NETLINK_QUEUE=y, xt NFQUEUE target): an iptables rule hands each
packet to this process, which accepts it `delay` ms after it arrived. The packets themselves
are delayed, so TCP sees a real round trip: slow start, ACK clocking and HTTP/1.1's queueing
all behave as over a long link. Rules are put on *ingress* hooks (PREROUTING), where the
packet no longer belongs to the sending socket: on an egress hook TCP small queues would
count the held packets against the sender and throttle it.

Raw netlink (NETLINK_NETFILTER), no library: bind the queue, copy metadata only (no payload),
take GSO packets whole, then release in arrival order with one batch verdict (every id up to
N) when N's time has come. A packet whose message was lost (socket overrun) is released by
the next batch verdict: later, never earlier.

  nfq-delay.py QUEUE_NUM DELAY_MS [READY_FILE]
Stops on SIGTERM/SIGINT within 100 ms, releasing what it holds.
Prints one JSON line of counters to stdout when it stops.
"""
import collections
import json
import math
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 1, 2, 3
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_META = 1
NFQA_CFG_F_GSO = 4
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NF_ACCEPT = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR, NLMSG_DONE = 2, 3
SOL_NETLINK, NETLINK_NO_ENOBUFS = 270, 5
SO_RCVBUFFORCE = 33


def attr(kind, payload):
    a = struct.pack('=HH', 4 + len(payload), kind) + payload
    return a + b'\0' * ((4 - len(a) % 4) % 4)


class Queue:
    def __init__(self, num):
        self.num = num
        self.seq = 0
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self.sock.bind((0, 0))

    def send(self, msg, payload, flags=NLM_F_REQUEST):
        self.seq += 1
        body = struct.pack('=BBH', socket.AF_UNSPEC, 0, socket.htons(self.num)) + payload
        self.sock.send(struct.pack('=IHHII', 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, self.seq, 0) + body)

    def config(self, payload):
        self.send(NFQNL_MSG_CONFIG, payload, NLM_F_REQUEST | NLM_F_ACK)
        data = self.sock.recv(65536)
        _, kind, _, _, _ = struct.unpack_from('=IHHII', data, 0)
        if kind == NLMSG_ERROR:
            (err,) = struct.unpack_from('=i', data, 16)
            if err != 0:
                raise OSError(-err, f'nfqueue config: {os.strerror(-err)}')

    def bind(self):
        self.config(attr(NFQA_CFG_CMD, struct.pack('!BxH', NFQNL_CFG_CMD_BIND, socket.AF_INET)))
        self.config(attr(NFQA_CFG_PARAMS, struct.pack('!IB', 0, NFQNL_COPY_META)))
        self.config(attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack('!I', 1 << 20)))
        self.config(attr(NFQA_CFG_FLAGS, struct.pack('!I', NFQA_CFG_F_GSO)) + attr(NFQA_CFG_MASK, struct.pack('!I', NFQA_CFG_F_GSO)))

    def unbind(self):
        try:
            self.send(NFQNL_MSG_CONFIG, attr(NFQA_CFG_CMD, struct.pack('!BxH', NFQNL_CFG_CMD_UNBIND, socket.AF_INET)))
        except OSError:
            pass

    def accept_upto(self, packet_id):
        self.send(NFQNL_MSG_VERDICT_BATCH, attr(NFQA_VERDICT_HDR, struct.pack('!II', NF_ACCEPT, packet_id)))

    def packet_ids(self, data):
        """Packet ids of the NFQNL_MSG_PACKET messages in one datagram."""
        off = 0
        while off + 16 <= len(data):
            length, kind, _, _, _ = struct.unpack_from('=IHHII', data, off)
            if length < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                a = off + 20  # nlmsghdr + nfgenmsg
                end = off + length
                while a + 4 <= end:
                    alen, akind = struct.unpack_from('=HH', data, a)
                    if alen < 4:
                        break
                    if (akind & 0x3FFF) == NFQA_PACKET_HDR:
                        yield struct.unpack_from('!I', data, a + 4)[0]
                        break
                    a += (alen + 3) & ~3
            off += (length + 3) & ~3


def main():
    num, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000.0
    ready = sys.argv[3] if len(sys.argv) > 3 else None
    q = Queue(num)
    q.bind()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    if ready:
        with open(ready, 'w') as f:
            f.write(str(os.getpid()))
    pending = collections.deque()
    counters = {'queue': num, 'delay_ms': delay * 1000, 'packets': 0, 'batches': 0, 'late_ms_max': 0.0}
    late_hist = [0, 0, 0, 0]  # released late by <1 ms, 1-2 ms, 2-5 ms, >=5 ms
    q.sock.setblocking(False)
    poller = select.poll()
    poller.register(q.sock, select.POLLIN)
    while not stop:
        timeout = 100  # ms until the oldest held packet is due (rounded up); 100 ms at most, to see a stop
        if pending:
            timeout = min(100, max(0, math.ceil((pending[0][0] - time.monotonic()) * 1000.0)))
        try:
            events = poller.poll(timeout)
        except InterruptedError:
            continue
        if events:
            now = time.monotonic()
            while True:
                try:
                    data = q.sock.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    break
                for pid in q.packet_ids(data):
                    pending.append((now + delay, pid))
                    counters['packets'] += 1
        now = time.monotonic()
        last = None
        while pending and pending[0][0] <= now:
            due, last = pending.popleft()
            late = (now - due) * 1000.0
            if late > counters['late_ms_max']:
                counters['late_ms_max'] = round(late, 2)
            late_hist[0 if late < 1 else 1 if late < 2 else 2 if late < 5 else 3] += 1
        if last is not None:
            q.accept_upto(last)
            counters['batches'] += 1
    if pending:
        q.accept_upto(pending[-1][1])
    q.unbind()
    counters['late_lt1ms'], counters['late_1to2ms'], counters['late_2to5ms'], counters['late_ge5ms'] = late_hist
    print(json.dumps(counters), flush=True)


if __name__ == '__main__':
    main()
