"""Keep PPO near its warm start: the entropy bonus becomes a penalty on KL(policy ‖ warm start).

PPO's entropy bonus, ent_coef * H(pi), is a pull towards the uniform policy: KL(pi ‖ uniform) =
log(n) - H(pi). AnchoredCnnPolicy swaps the uniform policy for a frozen copy of the policy as it
was after behaviour cloning (agents/behavior_cloning.py), so the same ent_coef now weighs
KL(pi ‖ pi_cloned) = -H(pi) - E_pi[log pi_cloned]: an entropy bonus plus a pull towards the
data's actions. That is the behaviour-regularised policy optimisation of offline RL, where the
reference is the data's behaviour.

Why: on Memory Maze the cloned policy beats random and model-free PPO in the real env, and PPO in
imagination spends that advantage on what the model gets wrong (docs/agents/README.md). The
anchor bounds how far the model's rewards can pull the policy from behaviour the real env
rewarded.

PPO reads the third value of evaluate_actions as the entropy and adds -ent_coef * mean(it) to its
loss, so returning -KL is the whole change; TensorBoard's train/entropy_loss then holds the mean
KL. It costs two more actor passes per minibatch (the policy's distribution again, and the
anchor's) rather than a copy of SB3's evaluate_actions; imagination, not the update, bounds the
speed (Memory Maze: 50 imagined steps/s with it, 45-47 in the runs without).

The anchor lives outside the module tree: it is neither trained nor saved. A saved policy loads
(for evaluation) without it, and then acts and trains as a plain CnnPolicy.
"""

from __future__ import annotations

import copy

import torch
from stable_baselines3.common.policies import ActorCriticCnnPolicy


class AnchoredCnnPolicy(ActorCriticCnnPolicy):
    _anchor: ActorCriticCnnPolicy | None = None

    def set_anchor(self) -> None:
        """Freeze a copy of the policy as it is now; from here on its KL to that copy replaces the entropy."""
        anchor = copy.deepcopy(self)
        anchor._anchor = None
        anchor.set_training_mode(False)
        anchor.requires_grad_(False)
        object.__setattr__(self, "_anchor", anchor)  # not a submodule: no parameters, no state_dict entries

    def kl_to_anchor(self, obs: torch.Tensor) -> torch.Tensor:
        """KL(pi(.|obs) ‖ pi_anchor(.|obs)) per observation."""
        if self._anchor is None:
            raise RuntimeError("AnchoredCnnPolicy: no anchor set; call set_anchor() after the warm start")
        with torch.no_grad():
            anchor = self._anchor.get_distribution(obs).distribution
        return torch.distributions.kl_divergence(self.get_distribution(obs).distribution, anchor)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        values, log_prob, entropy = super().evaluate_actions(obs, actions)
        if self._anchor is None:
            return values, log_prob, entropy
        return values, log_prob, -self.kl_to_anchor(obs)
