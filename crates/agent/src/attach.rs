//! Attaching the flow programs to interfaces, ingress and egress: TCX where
//! the kernel has it (6.6+), TC clsact through netlink otherwise.

use crate::interfaces::HostInterface;
use crate::kernel::{EGRESS_PROGRAM, INGRESS_PROGRAM};
use anyhow::{Context, Result};
use aya::{
    Ebpf,
    programs::{
        LinkOrder, SchedClassifier, TcAttachType,
        tc::{NlOptions, SchedClassifierLink, TcAttachOptions, qdisc_add_clsact},
    },
};
use std::collections::HashMap;

/// How a program was attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    Tcx,
    Netlink,
}

struct Attached {
    name: String,
    // Dropping a link detaches its program.
    _links: [SchedClassifierLink; 2],
}

#[derive(Default)]
pub struct Attachments {
    by_index: HashMap<u32, Attached>,
    /// Names of interfaces seen, kept after they go so late records can name them.
    names: HashMap<u32, String>,
    pub attach_failures: u64,
    pub attached_total: u64,
    pub detached_total: u64,
    pub last_mode: Option<AttachMode>,
}

fn attach_one(
    program: &mut SchedClassifier,
    iface: &str,
    at: TcAttachType,
) -> Result<(SchedClassifierLink, AttachMode)> {
    let tcx =
        program.attach_with_options(iface, at, TcAttachOptions::TcxOrder(LinkOrder::default()));
    let (id, mode) = match tcx {
        Ok(id) => (id, AttachMode::Tcx),
        Err(tcx_err) => {
            // Older kernel: classic clsact qdisc (it may already exist).
            let _ = qdisc_add_clsact(iface);
            let id = program
                .attach_with_options(iface, at, TcAttachOptions::Netlink(NlOptions::default()))
                .with_context(|| format!("TCX attach failed ({tcx_err}) and so did TC netlink"))?;
            (id, AttachMode::Netlink)
        }
    };
    Ok((program.take_link(id)?, mode))
}

fn classifier<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut SchedClassifier> {
    Ok(ebpf
        .program_mut(name)
        .context("flow program missing")?
        .try_into()?)
}

impl Attachments {
    pub fn is_attached(&self, index: u32) -> bool {
        self.by_index.contains_key(&index)
    }

    pub fn attached_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_index.values().map(|a| a.name.clone()).collect();
        names.sort();
        names
    }

    pub fn name_of(&self, index: u32) -> Option<String> {
        self.names.get(&index).cloned()
    }

    pub fn attach(&mut self, ebpf: &mut Ebpf, iface: &HostInterface) -> Result<()> {
        let result = (|| -> Result<_> {
            let (ingress, mode) = attach_one(
                classifier(ebpf, INGRESS_PROGRAM)?,
                &iface.name,
                TcAttachType::Ingress,
            )?;
            let (egress, _) = attach_one(
                classifier(ebpf, EGRESS_PROGRAM)?,
                &iface.name,
                TcAttachType::Egress,
            )?;
            Ok(([ingress, egress], mode))
        })();
        match result {
            Ok((links, mode)) => {
                self.last_mode = Some(mode);
                self.attached_total += 1;
                self.names.insert(iface.index, iface.name.clone());
                self.by_index.insert(
                    iface.index,
                    Attached {
                        name: iface.name.clone(),
                        _links: links,
                    },
                );
                Ok(())
            }
            Err(e) => {
                self.attach_failures += 1;
                Err(e.context(format!("attaching to interface {}", iface.name)))
            }
        }
    }

    /// Forgets an interface that went away (its links die with it).
    pub fn forget(&mut self, index: u32) -> Option<String> {
        let gone = self.by_index.remove(&index)?;
        self.detached_total += 1;
        Some(gone.name)
    }

    pub fn attached_indexes(&self) -> Vec<u32> {
        self.by_index.keys().copied().collect()
    }

    /// Detaches every program now.
    pub fn detach_all(&mut self) {
        self.by_index.clear();
    }
}
