//! The open conversations, out of line: the hash map holds a key and a slot
//! number, the conversations live in fixed chunks that never move. Growing
//! the map then moves 48-byte entries, not whole conversations (rehashing
//! inline conversations was a fifth of the pipeline's time at 100,000 of
//! them), and a chunk holds exactly its conversations, with no load-factor
//! slack.

use super::key::ConversationKey;
use super::state::Conversation;
use foldhash::{HashMap, HashMapExt};

/// Conversations per chunk: 4,096 of ~260 bytes, about 1 MiB each.
const CHUNK: usize = 4096;

#[derive(Default)]
pub struct ConversationTable {
    index: HashMap<ConversationKey, u32>,
    chunks: Vec<Vec<Option<Conversation>>>,
    /// Slots of ended conversations, reused first.
    free: Vec<u32>,
}

impl ConversationTable {
    pub fn new() -> ConversationTable {
        ConversationTable {
            index: HashMap::new(),
            chunks: Vec::new(),
            free: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    fn slot(&mut self, slot: u32) -> &mut Option<Conversation> {
        let slot = slot as usize;
        &mut self.chunks[slot / CHUNK][slot % CHUNK]
    }

    pub fn get_mut(&mut self, key: &ConversationKey) -> Option<&mut Conversation> {
        let slot = *self.index.get(key)?;
        self.slot(slot).as_mut()
    }

    /// Adds a conversation (the key must be new) and returns it.
    pub fn insert(
        &mut self,
        key: ConversationKey,
        conversation: Conversation,
    ) -> &mut Conversation {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                let last = self.chunks.len() - 1;
                self.chunks[last].push(None);
                (last * CHUNK + self.chunks[last].len() - 1) as u32
            }
        };
        self.index.insert(key, slot);
        self.slot(slot).insert(conversation)
    }

    pub fn remove(&mut self, key: &ConversationKey) -> Option<Conversation> {
        let slot = self.index.remove(key)?;
        self.free.push(slot);
        self.slot(slot).take()
    }

    /// Every conversation with its key.
    pub fn for_each_mut(&mut self, mut visit: impl FnMut(&ConversationKey, &mut Conversation)) {
        for (key, &slot) in &self.index {
            let slot = slot as usize;
            if let Some(c) = &mut self.chunks[slot / CHUNK][slot % CHUNK] {
                visit(key, c);
            }
        }
    }

    /// Takes every conversation out, leaving the table empty.
    pub fn drain(&mut self) -> Vec<Conversation> {
        self.index.clear();
        self.free.clear();
        std::mem::take(&mut self.chunks)
            .into_iter()
            .flatten()
            .flatten()
            .collect()
    }
}
