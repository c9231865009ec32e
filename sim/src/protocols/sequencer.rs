//! `sequencer`: a single-leader sequencer per shard — a BASELINE with NO fault
//! tolerance.
//!
//! The first node of each committee is the leader. Gateways forward client
//! transactions to it; it batches them (`block_max_tx`, `block_max_bytes`,
//! `batch_timeout_ms`), signs and broadcasts each block and commits it at once;
//! replicas verify and commit a block on receipt. There are no votes, no view
//! changes and no retransmission: a crashed leader stops its shard, a lost block
//! message leaves a replica behind for good, and a Byzantine leader could commit
//! anything. It measures the cost of the network and CPU model alone, as a lower
//! bound on the latency any real protocol can reach.

use crate::kernel::NS_PER_MS;
use crate::protocol::{BlockRef, Ctx, Message, NodeId, Protocol, Replica, TimerId, TxRef};
use crate::scenario::{Scenario, ScenarioError};

/// Bytes of a forward message besides the transaction (header + gateway signature).
const FORWARD_OVERHEAD_BYTES: u64 = 96;

/// The sequencer's messages.
#[derive(Clone, Debug)]
pub enum SeqMsg {
    /// A gateway forwards a client transaction to the leader.
    Forward(TxRef),
    /// The leader's block at `height`.
    Block {
        /// Height (1-based).
        height: u64,
        /// The block.
        block: BlockRef,
        /// Size on the wire.
        size_bytes: u64,
    },
}

impl Message for SeqMsg {
    fn size_bytes(&self) -> u64 {
        match self {
            SeqMsg::Forward(tx) => u64::from(tx.size_bytes) + FORWARD_OVERHEAD_BYTES,
            SeqMsg::Block { size_bytes, .. } => *size_bytes,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            SeqMsg::Forward(_) => "forward",
            SeqMsg::Block { .. } => "block",
        }
    }
}

/// The sequencer's only timer: propose a partial batch.
#[derive(Copy, Clone, Debug)]
pub struct BatchTimeout;

/// The protocol factory.
pub struct Sequencer {
    block_max_tx: usize,
    block_max_bytes: u64,
    batch_timeout_ns: u64,
}

impl Protocol for Sequencer {
    type Replica = SequencerReplica;
    const NAME: &'static str = "sequencer";

    fn from_scenario(s: &Scenario) -> Result<Self, ScenarioError> {
        if let Some(v) = s.protocol.get(Self::NAME) {
            let empty = v.as_table().is_some_and(|t| t.is_empty());
            if !empty {
                return Err(ScenarioError::InvalidValue {
                    source_name: s.name.clone(),
                    path: "protocol.sequencer".into(),
                    message: "the sequencer has no parameters (it uses block_max_tx, block_max_bytes, batch_timeout_ms)".into(),
                });
            }
        }
        Ok(Sequencer {
            block_max_tx: s.block_max_tx as usize,
            block_max_bytes: s.block_max_bytes,
            batch_timeout_ns: (s.batch_timeout_ms * NS_PER_MS as f64) as u64,
        })
    }

    fn max_faulty(&self, _committee_size: usize) -> usize {
        0
    }

    fn replica(&self, _shard: u32, me: NodeId, committee: &[NodeId]) -> SequencerReplica {
        SequencerReplica {
            leader: committee[0],
            me,
            pending: Vec::with_capacity(self.block_max_tx),
            pending_bytes: 0,
            height: 0,
            last: None,
            timer: None,
            block_max_tx: self.block_max_tx,
            block_max_bytes: self.block_max_bytes,
            batch_timeout_ns: self.batch_timeout_ns,
        }
    }
}

/// One node of the sequencer.
pub struct SequencerReplica {
    leader: NodeId,
    me: NodeId,
    pending: Vec<TxRef>,
    pending_bytes: u64,
    height: u64,
    last: Option<BlockRef>,
    timer: Option<TimerId>,
    block_max_tx: usize,
    block_max_bytes: u64,
    batch_timeout_ns: u64,
}

type C<'a> = Ctx<'a, SeqMsg, BatchTimeout>;

impl SequencerReplica {
    fn enqueue(&mut self, ctx: &mut C<'_>, tx: TxRef) {
        let size = u64::from(tx.size_bytes);
        if !self.pending.is_empty() && self.pending_bytes + size > self.block_max_bytes {
            self.propose(ctx);
        }
        self.pending.push(tx);
        self.pending_bytes += size;
        if self.pending.len() >= self.block_max_tx || self.pending_bytes >= self.block_max_bytes {
            self.propose(ctx);
        } else if self.timer.is_none() {
            self.timer = Some(ctx.set_timer(self.batch_timeout_ns, BatchTimeout));
        }
    }

    fn propose(&mut self, ctx: &mut C<'_>) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
        if self.pending.is_empty() {
            return;
        }
        let block = ctx.make_block(&self.pending, self.last);
        let n = self.pending.len() as u64;
        self.pending.clear();
        self.pending_bytes = 0;
        let size_bytes = ctx.block_size_bytes(block);
        ctx.charge_hash(size_bytes);
        ctx.charge_sign();
        self.height += 1;
        self.last = Some(block);
        ctx.broadcast(SeqMsg::Block {
            height: self.height,
            block,
            size_bytes,
        });
        ctx.charge_execute(n);
        ctx.commit(self.height, block);
    }
}

impl Replica for SequencerReplica {
    type Msg = SeqMsg;
    type Timer = BatchTimeout;

    fn on_start(&mut self, _ctx: &mut C<'_>) {}

    fn on_client_tx(&mut self, ctx: &mut C<'_>, tx: TxRef) {
        ctx.charge_verify(1);
        if self.me == self.leader {
            self.enqueue(ctx, tx);
        } else {
            ctx.send(self.leader, SeqMsg::Forward(tx));
        }
    }

    fn on_message(&mut self, ctx: &mut C<'_>, _from: NodeId, msg: SeqMsg) {
        match msg {
            SeqMsg::Forward(tx) => {
                if self.me == self.leader {
                    ctx.charge_verify(1);
                    self.enqueue(ctx, tx);
                }
            }
            SeqMsg::Block {
                height,
                block,
                size_bytes,
            } => {
                ctx.charge_verify(1);
                ctx.charge_hash(size_bytes);
                ctx.charge_execute(ctx.block_txs(block).len() as u64);
                self.height = self.height.max(height);
                ctx.commit(height, block);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut C<'_>, _timer: BatchTimeout) {
        self.timer = None;
        self.propose(ctx);
    }

    fn on_recover(&mut self, _ctx: &mut C<'_>) {
        // Volatile state is lost; the height (and chain tip) is durable.
        self.pending.clear();
        self.pending_bytes = 0;
        self.timer = None;
    }
}
