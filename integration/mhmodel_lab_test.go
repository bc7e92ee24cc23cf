//go:build lab

package integration

import (
	"math/bits"
	"net/netip"
)

// A model of the kernel's mh lookup table (net/netfilter/ipvs/ip_vs_mh.c
// on a 64-bit kernel with the default CONFIG_IP_VS_MH_TAB_INDEX=12), used
// to find flows whose real server depends on the destination list order:
// with three equal weights only a few slots of 4093 differ between two
// orders, so random probes rarely see it.

const mhTableSize = 4093

// mhHash is the kernel's hsiphash of one 32-bit word: on 64-bit kernels
// SipHash-1-3 with a 64-bit key pair, truncated to 32 bits.
func mhHash(v uint32, k uint64) uint32 {
	v0 := 0x736f6d6570736575 ^ k
	v1 := 0x646f72616e646f6d ^ k
	v2 := 0x6c7967656e657261 ^ k
	v3 := 0x7465646279746573 ^ k
	m := uint64(4)<<56 | uint64(v)
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13) ^ v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16) ^ v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21) ^ v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17) ^ v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	v3 ^= m
	round()
	v0 ^= m
	v2 ^= 0xff
	round()
	round()
	round()
	return uint32(v0 ^ v1 ^ v2 ^ v3)
}

// The kernel's fixed hash keys (generate_hash_secret), both halves equal.
const mhKey1, mhKey2 = 2654435761, 2654446892

func mhKeyOf(a netip.Addr, port uint16, k uint64) uint32 {
	b := a.As4()
	return mhHash(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3])+uint32(port), k)
}

// mhTable populates the table for equal-weight destinations in list
// order (head first): each in turn takes its next free preferred slot.
func mhTable(list []netip.AddrPort) []int {
	off := make([]uint32, len(list))
	skip := make([]uint32, len(list))
	for i, d := range list {
		off[i] = mhKeyOf(d.Addr(), d.Port(), mhKey1) % mhTableSize
		skip[i] = mhKeyOf(d.Addr(), d.Port(), mhKey2)%(mhTableSize-1) + 1
	}
	table := make([]int, mhTableSize)
	for i := range table {
		table[i] = -1
	}
	for n := 0; n < mhTableSize; {
		for i := range list {
			for table[off[i]] != -1 {
				off[i] = (off[i] + skip[i]) % mhTableSize
			}
			table[off[i]] = i
			if n++; n == mhTableSize {
				return table
			}
		}
	}
	return table
}

// mhPick is the destination the table gives a client (mh-port).
func mhPick(list []netip.AddrPort, table []int, client netip.Addr, port uint16) netip.AddrPort {
	return list[table[mhKeyOf(client, port, mhKey1)%mhTableSize]]
}
