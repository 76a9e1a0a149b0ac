// IP packets for the pcap trace (sip_trace.cc): one SIP datagram or TCP segment framed as it travelled, so
// Wireshark/tshark decode and reassemble it. IPv4 (RFC 791, header checksum) or IPv6 (RFC 8200) by the family of
// the addresses, then UDP (RFC 768) or TCP (RFC 9293), both with their checksums over the pseudo-header.
#pragma once
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace parkway::proxy::trace {

// Largest payload of one framed packet: IPv4's total length is 16 bits (RFC 791 §3.1), minus 20 bytes of IP and 20
// of TCP header. A longer message over TCP becomes several segments.
constexpr size_t kMaxSegment = 65495;
constexpr size_t kMaxDatagram = 65507; // 65535 - 20 (IPv4) - 8 (UDP)

// src and dst: AF_INET or AF_INET6, the same family. "" when they differ or len is too large.
std::string udpPacket(const sockaddr *src, const sockaddr *dst, const char *data, size_t len);
// One TCP segment with PSH+ACK: seq = sequence number of data[0], ack = the next byte expected from dst.
std::string tcpPacket(const sockaddr *src, const sockaddr *dst, uint32_t seq, uint32_t ack, const char *data,
                      size_t len);

} // namespace parkway::proxy::trace
