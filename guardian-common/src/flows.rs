//! Types for the flow signals (handshakes per port, connections per source, retransmit patterns per flow).
